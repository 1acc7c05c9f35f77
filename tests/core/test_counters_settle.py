"""core/counters/settle.py: settles applied at once on memory://; on Redis, the settles
of concurrent requests go in one `adjust` call while each request waits for its own;
failures logged with what was lost, never raised into a response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from interlock.core.counters import Adjustment, CounterError, RateAdjust, ReserveCheck, Settle
from interlock.core.counters.memory import MemoryCounters
from interlock.core.counters.redis import RedisCounters
from interlock.core.counters.settle import Settler
from tests.core.test_counters import _drop_prefix, _open_redis, _prefix


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def spawn(coro: Any, *, name: str) -> asyncio.Task[Any]:
    return asyncio.get_running_loop().create_task(coro, name=name)


class Counting:
    """Wraps counters to count `adjust` calls (round trips) and fail on demand."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: list[int] = []
        self.fail: Exception | None = None

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[float]:
        self.calls.append(len(adjustments))
        if self.fail is not None:
            raise self.fail
        result: list[float] = await self.inner.adjust(adjustments)
        return result


@pytest.fixture
async def redis() -> AsyncIterator[RedisCounters]:
    prefix = _prefix()
    counters = await _open_redis(prefix)
    raw = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        yield counters
    finally:
        await _drop_prefix(raw, prefix)
        await raw.aclose()
        await counters.close()


async def test_on_memory_a_settle_is_applied_before_it_returns() -> None:
    counters = MemoryCounters()
    settler = Settler(counters, spawn, Log(), name="t")
    assert settler.inline
    await counters.check([ReserveCheck("usd", 5.0, 10.0)])
    assert await settler.settle([Settle("usd", 5.0, 1.25)]) == [1.25]
    assert await counters.get("usd") == 1.25
    assert await settler.settle([]) == []


@pytest.mark.services
async def test_on_redis_concurrent_settles_share_a_round_trip_and_each_waits_for_its_own(
    redis: RedisCounters,
) -> None:
    counters = Counting(redis)
    settler = Settler(counters, spawn, Log(), name="t")  # type: ignore[arg-type]
    assert not settler.inline
    for _ in range(100):
        assert (await redis.check([ReserveCheck("usd", 1.0, 1000.0)])).allowed
    # What the post_response hooks of 100 concurrent requests do.
    values = await asyncio.gather(
        *(
            settler.settle([Settle("usd", 1.0, 0.5), RateAdjust("tpm", 10, 60.0, -1)])
            for _ in range(100)
        )
    )
    assert sum(counters.calls) == 200
    assert len(counters.calls) <= 2  # the first alone, the 99 that queued meanwhile together
    assert await redis.get("usd") == 50.0
    assert (
        sorted(v[0] for v in values if v is not None)
        == [100.0 - 0.5 * i for i in range(1, 101)][::-1]
    )
    # Sequential: each settle is applied by the time it returns.
    assert await settler.settle([Settle("usd", 0.0, 1.0)]) == [51.0]
    assert await redis.get("usd") == 51.0
    await settler.close()


@pytest.mark.services
async def test_a_failed_batch_is_logged_with_what_was_lost_and_raises_nothing(
    redis: RedisCounters,
) -> None:
    counters = Counting(redis)
    log = Log()
    settler = Settler(counters, spawn, log, name="budget-settle")  # type: ignore[arg-type]
    counters.fail = CounterError("Redis at 127.0.0.1:1: down")
    assert await settler.settle([Settle("usd", 1.0, 0.0), Settle("usd:k", 1.0, 0.0)]) is None
    assert log.lines == [
        (
            "counter_settle_failed",
            {"settler": "budget-settle", "lost": 2, "error": "Redis at 127.0.0.1:1: down"},
        )
    ]
    counters.fail = ValueError("a bug")  # anything else: still no request left hanging
    assert await settler.settle([Settle("usd", 1.0, 0.0)]) is None
    counters.fail = None
    assert await settler.settle([Settle("usd", 0.0, 2.0)]) == [2.0]
    await settler.close()


async def test_on_memory_a_counters_error_is_logged_not_raised() -> None:
    counters = MemoryCounters()
    await counters.put("usd", "not a number")
    log = Log()
    settler = Settler(counters, spawn, log, name="t")
    assert await settler.settle([Settle("usd", 1.0, 0.0)]) is None
    assert log.lines[0][0] == "counter_settle_failed"


async def test_on_memory_settle_now_applies_at_once_and_logs_failures() -> None:
    counters = MemoryCounters()
    log = Log()
    settler = Settler(counters, spawn, log, name="t")
    assert settler.memory is counters
    await counters.check([ReserveCheck("usd", 5.0, 10.0)])
    assert settler.settle_now([Settle("usd", 5.0, 1.25)]) == [1.25]
    assert await counters.get("usd") == 1.25
    assert settler.settle_now([]) == []
    await counters.put("text", "not a number")
    assert settler.settle_now([Settle("text", 1.0, 0.0)]) is None
    assert log.lines[0][0] == "counter_settle_failed"
    wrapped = Counting(counters)
    assert Settler(wrapped, spawn, log, name="t").memory is None  # type: ignore[arg-type]
