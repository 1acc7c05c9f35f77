"""core/counters/settle.py: settles applied at once on memory://, batched off the request
path on Redis (one `adjust` for many requests), failures logged with what was lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from interlock.core.counters import (
    Adjustment,
    CounterError,
    RateAdjust,
    ReserveCheck,
    Settle,
)
from interlock.core.counters.memory import MemoryCounters
from interlock.core.counters.settle import Settler
from tests.core.test_counters import _drop_prefix, _open_redis, _prefix


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


class Spawner:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def __call__(self, coro: Any, *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        return task


class Counting:
    """Wraps counters to count `adjust` calls (round trips) and fail on demand."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: list[int] = []
        self.fail = False

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[float]:
        self.calls.append(len(adjustments))
        if self.fail:
            raise CounterError("Redis at 127.0.0.1:1: down")
        result: list[float] = await self.inner.adjust(adjustments)
        return result


async def test_on_memory_a_settle_is_applied_before_it_returns() -> None:
    counters = MemoryCounters()
    spawn = Spawner()
    settler = Settler(counters, spawn, Log(), name="t")
    assert settler.inline
    await counters.check([ReserveCheck("usd", 5.0, 10.0)])
    seen: list[list[float]] = []
    await settler.settle([Settle("usd", 5.0, 1.25)], seen.append)
    assert await counters.get("usd") == 1.25
    assert seen == [[1.25]]
    assert spawn.tasks == []  # no background task on memory


@pytest.mark.services
async def test_on_redis_many_requests_settle_in_one_round_trip() -> None:
    from redis.asyncio import Redis

    prefix = _prefix()
    redis = await _open_redis(prefix)
    raw = Redis.from_url("redis://127.0.0.1:6379/0")
    counters = Counting(redis)
    spawn = Spawner()
    settler = Settler(counters, spawn, Log(), name="t")  # type: ignore[arg-type]
    try:
        assert not settler.inline
        for _ in range(100):
            assert (await redis.check([ReserveCheck("usd", 1.0, 1000.0)])).allowed
        seen: list[list[float]] = []
        for _ in range(100):  # what 100 post_response hooks do, each without waiting
            await settler.settle(
                [Settle("usd", 1.0, 0.5), RateAdjust("tpm", 10, 60.0, -1)], seen.append
            )
        assert counters.calls == []  # nothing sent on the request path
        await settler.flush()
        assert counters.calls == [200]  # one round trip for all of them
        assert await redis.get("usd") == 50.0
        assert len(seen) == 100 and seen[-1][0] == 50.0  # each request saw its own values
        await settler.close()
        assert all(task.done() for task in spawn.tasks)
    finally:
        await _drop_prefix(raw, prefix)
        await raw.aclose()
        await redis.close()


@pytest.mark.services
async def test_a_failed_batch_is_logged_with_what_was_lost_and_the_next_one_goes_through() -> None:
    from redis.asyncio import Redis

    prefix = _prefix()
    redis = await _open_redis(prefix)
    raw = Redis.from_url("redis://127.0.0.1:6379/0")
    counters = Counting(redis)
    log = Log()
    settler = Settler(counters, Spawner(), log, name="budget-settle")  # type: ignore[arg-type]
    try:
        counters.fail = True
        await settler.settle([Settle("usd", 1.0, 0.0), Settle("usd:k", 1.0, 0.0)])
        await settler.flush()
        assert log.lines == [
            (
                "counter_settle_failed",
                {"settler": "budget-settle", "lost": 2, "error": "Redis at 127.0.0.1:1: down"},
            )
        ]
        counters.fail = False
        await settler.settle([Settle("usd", 0.0, 2.0)])
        await settler.flush()
        assert await redis.get("usd") == 2.0
        await settler.close()
    finally:
        await _drop_prefix(raw, prefix)
        await raw.aclose()
        await redis.close()


async def test_a_failing_callback_is_logged_and_harms_nothing() -> None:
    counters = MemoryCounters()
    log = Log()
    settler = Settler(counters, Spawner(), log, name="t")

    def boom(values: list[float]) -> None:
        raise RuntimeError("bad callback")

    await settler.settle([Settle("usd", 0.0, 1.0)], boom)
    assert await counters.get("usd") == 1.0
    assert log.lines[0][0] == "counter_settle_callback_failed"
