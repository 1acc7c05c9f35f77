"""core/counters/gate.py: the limits of two plugins of one request in one counters call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from interlock.core.counters import (
    Check,
    CheckResult,
    RateCheck,
    RateResult,
    Reservation,
    ReserveCheck,
)
from interlock.core.counters.gate import KEY, Gate
from interlock.core.counters.memory import MemoryCounters


class Counting(MemoryCounters):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    async def check(self, checks: Sequence[Check]) -> CheckResult:
        self.calls.append([c.key for c in checks])
        return await super().check(checks)


async def test_deferred_checks_travel_in_the_checking_plugins_call() -> None:
    counters = Counting()
    state: dict[str, Any] = {}
    seen: list[tuple[tuple[RateResult | Reservation, ...], bool]] = []
    Gate.of(state).defer(
        [RateCheck("rpm", 5, 60.0), RateCheck("tpm", 100, 60.0, 10)],
        lambda r, a: seen.append((r, a)),
    )
    assert state[KEY] is Gate.of(state)
    mine = await Gate.of(state).check(counters, [ReserveCheck("usd", 1.0, 10.0)])
    assert counters.calls == [["rpm", "tpm", "usd"]]  # one call for both plugins
    assert mine == CheckResult(True, (Reservation(True, 1.0, 10.0),))
    ((results, applied),) = seen
    assert applied and [r.remaining for r in results] == [4, 90]  # type: ignore[union-attr]


async def test_a_refused_budget_takes_no_rate_limit_unit_and_the_callback_knows() -> None:
    counters = Counting()
    state: dict[str, Any] = {}
    seen: list[bool] = []
    gate = Gate.of(state)
    gate.defer([RateCheck("rpm", 5, 60.0)], lambda r, applied: seen.append(applied))
    mine = await gate.check(counters, [ReserveCheck("usd", 11.0, 10.0)])
    assert not mine.allowed and not mine.results[0].allowed
    assert seen == [False]  # not applied: nothing to settle later
    assert (await counters.rate("rpm", 5, 60.0, cost=0)).remaining == 5


async def test_a_callback_that_raises_ends_the_check_there() -> None:
    counters = Counting()
    gate = Gate.of({})

    def refuse(results: Any, applied: bool) -> None:
        if not all(r.allowed for r in results):
            raise LookupError("429")

    gate.defer([RateCheck("rpm", 1, 60.0, cost=2)], refuse)  # can never fit
    with pytest.raises(LookupError):
        await gate.check(counters, [ReserveCheck("usd", 1.0, 10.0)])
    assert await counters.get("usd") == 0.0


async def test_without_deferred_checks_the_gate_is_a_plain_check() -> None:
    counters = Counting()
    result = await Gate().check(counters, [ReserveCheck("usd", 1.0, 10.0)])
    assert result.allowed and counters.calls == [["usd"]]


def test_settles_left_by_one_plugin_are_taken_once_by_the_last() -> None:
    from interlock.core.counters import RateAdjust, Settle

    state: dict[str, Any] = {}
    Gate.of(state).defer_settle([RateAdjust("tpm", 100, 60.0, -5)])
    assert Gate.of(state).take_settles() == [RateAdjust("tpm", 100, 60.0, -5)]
    assert Gate.of(state).take_settles() == []
    Gate.of(state).defer_settle([Settle("usd", 1.0, 0.5)])
    assert Gate.of(state).take_settles() == [Settle("usd", 1.0, 0.5)]


async def test_check_now_on_memory_runs_the_deferred_callbacks_like_check() -> None:
    counters = MemoryCounters()
    state: dict[str, Any] = {}
    seen: list[tuple[tuple[RateResult | Reservation, ...], bool]] = []
    Gate.of(state).defer([RateCheck("rpm", 5, 60.0)], lambda r, a: seen.append((r, a)))
    mine = Gate.of(state).check_now(counters, [ReserveCheck("usd", 1.0, 10.0)])
    assert mine == CheckResult(True, (Reservation(True, 1.0, 10.0),))
    ((results, applied),) = seen
    assert applied and [r.remaining for r in results] == [4]  # type: ignore[union-attr]
    refused = Gate.of(state).check_now(counters, [ReserveCheck("usd", 20.0, 10.0)])
    assert not refused.allowed and len(seen) == 1  # nothing deferred this time
    Gate.of(state).defer([RateCheck("rpm", 5, 60.0)], lambda r, a: seen.append((r, a)))
    assert not Gate.of(state).check_now(counters, [ReserveCheck("usd", 20.0, 10.0)]).allowed
    assert seen[-1][1] is False  # refused by the budget: the rate limit was not applied
    assert (await counters.rate("rpm", 5, 60.0, cost=0)).remaining == 4
