"""core/counters `check` and `adjust`: several limits of one request in one round trip.

The same two backends as tests/core/test_counters.py (its `backend` fixture): memory with
a fake clock, and the real Redis with a unique key prefix (marked `services`).
"""

from __future__ import annotations

import asyncio
import math

import pytest

from interlock.core.counters import (
    Adjustment,
    Check,
    CounterError,
    RateAdjust,
    RateCheck,
    RateResult,
    Reservation,
    ReserveCheck,
    Settle,
)
from interlock.core.counters.memory import MemoryCounters, in_process
from interlock.core.counters.redis import RedisCounters
from tests.core import test_counters as spec
from tests.core.test_counters import Backend, _closed_port, _drop_prefix, _open_redis, _prefix

backend = spec.backend  # the same two backends, by fixture name


def _rate(r: RateResult | Reservation) -> RateResult:
    assert isinstance(r, RateResult)
    return r


def _res(r: RateResult | Reservation) -> Reservation:
    assert isinstance(r, Reservation)
    return r


async def test_a_batch_that_fits_applies_every_limit(backend: Backend) -> None:
    c = backend.counters
    checks = [
        RateCheck("rpm:t", 5, 60.0),
        RateCheck("tpm:t", 1000, 60.0, cost=300),
        ReserveCheck("usd:t", 2.5, 10.0, ttl_s=3600.0),
    ]
    first = await c.check(checks)
    assert first.allowed
    assert _rate(first.results[0]).remaining == 4
    assert _rate(first.results[1]).remaining == 700
    assert _res(first.results[2]) == Reservation(True, 2.5, 10.0)
    second = await c.check(checks)
    assert second.allowed
    assert [_rate(second.results[0]).remaining, _rate(second.results[1]).remaining] == [3, 400]
    assert await c.get("usd:t") == 5.0
    assert (await c.rate("rpm:t", 5, 60.0, cost=0)).remaining == 3


async def test_one_refusal_changes_nothing_and_every_limit_reports_its_state(
    backend: Backend,
) -> None:
    c = backend.counters
    assert (await c.check([RateCheck("key", 2, 60.0)])).allowed
    assert (await c.check([RateCheck("key", 2, 60.0)])).allowed
    await c.incr("usd", 9.0)
    checks = [
        RateCheck("tenant", 10, 60.0),  # fits
        RateCheck("key", 2, 60.0),  # full: refused
        ReserveCheck("usd", 0.5, 10.0),  # fits
        ReserveCheck("usd:key", 3.0, 2.0),  # never fits
    ]
    result = await c.check(checks)
    assert not result.allowed
    tenant, key, usd, usd_key = result.results
    # The fitting ones say how they stand without this request...
    assert _rate(tenant) == RateResult(True, 10, 10, 0.0, 0.0)
    assert _res(usd) == Reservation(True, 9.0, 10.0)
    # ...the refused ones why, with an honest wait for the rate limit.
    assert not key.allowed and _rate(key).remaining == 0
    assert 0 < _rate(key).retry_after_s <= 30.0
    assert _res(usd_key) == Reservation(False, 0.0, 2.0)
    # Nothing was applied: the tenant's bucket and the budget are untouched.
    assert (await c.rate("tenant", 10, 60.0, cost=0)).remaining == 10
    assert await c.get("usd") == 9.0
    assert await c.get("usd:key") == 0.0


async def test_a_refused_rate_limit_fits_after_its_retry_after(backend: Backend) -> None:
    c = backend.counters
    checks = [RateCheck("a", 3, 3600.0), RateCheck("b", 1, 60.0)]
    assert (await c.check(checks)).allowed
    refused = await c.check(checks)
    assert not refused.allowed
    a, b = refused.results
    assert a.allowed and _rate(a).remaining == 2
    wait = _rate(b).retry_after_s
    assert 0 < wait <= 60.0
    if backend.clock is not None:
        assert wait == 60.0
        backend.clock.advance(wait - 0.001)
        assert not (await c.check(checks)).allowed  # not a moment too generous
        backend.clock.advance(0.001)
        again = await c.check(checks)
        assert again.allowed  # honest: it now fits
        assert _rate(again.results[0]).remaining == 1  # `a` was charged only twice in all


async def test_a_cost_above_a_limit_is_refused_for_ever(backend: Backend) -> None:
    result = await backend.counters.check([RateCheck("tpm", 100, 60.0, cost=101)])
    assert not result.allowed
    assert _rate(result.results[0]).retry_after_s == math.inf


async def test_an_empty_batch_is_allowed_and_duplicate_keys_are_refused(
    backend: Backend,
) -> None:
    c = backend.counters
    assert (await c.check([])).allowed
    with pytest.raises(ValueError, match="distinct"):
        await c.check([RateCheck("same", 1, 60.0), ReserveCheck("same", 1.0, 2.0)])
    with pytest.raises(ValueError):
        await c.check([RateCheck("bad", 0, 60.0)])
    with pytest.raises(ValueError):
        await c.check([ReserveCheck("bad", -1.0, 2.0)])


async def test_a_concurrent_burst_lets_exactly_the_tightest_limit_through(
    backend: Backend,
) -> None:
    c = backend.counters
    checks = [RateCheck("burst:tenant", 100, 3600.0), RateCheck("burst:key", 1000, 3600.0)]
    results = await asyncio.gather(*(c.check(checks) for _ in range(1000)))
    assert sum(r.allowed for r in results) == 100
    # The 900 refused by the tenant's limit took nothing from the key's.
    assert (await c.rate("burst:key", 1000, 3600.0, cost=0)).remaining == 900


async def test_a_concurrent_burst_of_reservations_never_overspends(backend: Backend) -> None:
    c = backend.counters
    checks = [ReserveCheck("spend:tenant", 0.3, 30.0), ReserveCheck("spend:key", 0.3, 300.0)]
    results = await asyncio.gather(*(c.check(checks) for _ in range(1000)))
    assert sum(r.allowed for r in results) == 100
    assert await c.get("spend:tenant") == pytest.approx(30.0)
    assert await c.get("spend:key") == pytest.approx(30.0)


@pytest.mark.services
async def test_two_redis_pools_sharing_a_burst_of_checks_let_exactly_the_limit_through() -> None:
    from redis.asyncio import Redis

    prefix = _prefix()
    one = await _open_redis(prefix)
    two = await _open_redis(prefix)  # its own pool, as another process would have
    raw = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        checks = [RateCheck("shared:rpm", 100, 3600.0), ReserveCheck("shared:usd", 1.0, 150.0)]
        results = await asyncio.gather(
            *((one if i % 2 else two).check(checks) for i in range(1000))
        )
        assert sum(r.allowed for r in results) == 100
        assert await one.get("shared:usd") == 100.0
    finally:
        await _drop_prefix(raw, prefix)
        await raw.aclose()
        await one.close()
        await two.close()


async def test_a_reservation_sets_its_ttl_on_the_first_write_only(backend: Backend) -> None:
    c = backend.counters
    assert (await c.check([ReserveCheck("window", 1.0, 10.0, ttl_s=100.0)])).allowed
    if backend.clock is not None:
        backend.clock.advance(60.0)
        assert (await c.check([ReserveCheck("window", 1.0, 10.0, ttl_s=100.0)])).allowed
        backend.clock.advance(40.0)  # 100 s after the first write, not the second
        assert await c.get("window") == 0.0
        return
    assert backend.raw is not None
    ttl = await backend.raw.pttl(backend.prefix + "window")
    assert 0 < ttl <= 100_000
    await backend.raw.pexpire(backend.prefix + "window", 5_000)
    assert (await c.check([ReserveCheck("window", 1.0, 10.0, ttl_s=100.0)])).allowed
    assert 0 < await backend.raw.pttl(backend.prefix + "window") <= 5_000  # kept, not reset


async def test_adjust_settles_and_gives_rate_units_back_in_order(backend: Backend) -> None:
    c = backend.counters
    assert (await c.check([RateCheck("tpm", 1000, 3600.0, cost=800)])).allowed
    assert (await c.check([ReserveCheck("usd", 4.0, 10.0)])).allowed
    values = await c.adjust(
        [
            RateAdjust("tpm", 1000, 3600.0, -500),  # used 300 of the 800 reserved
            Settle("usd", reserved=4.0, actual=1.5),
            Settle("usd", reserved=1.0, actual=0.0),  # the same key again: in order
            Settle("other", reserved=2.0, actual=0.0),  # never below zero
        ]
    )
    assert values[0] == pytest.approx(300.0, abs=0.01)  # a bucket drains as time passes
    assert values[1:] == [1.5, 0.5, 0.0]
    assert await c.get("usd") == 0.5
    assert await c.get("other") == 0.0
    assert (await c.rate("tpm", 1000, 3600.0, cost=0)).remaining == 700
    assert await c.adjust([]) == []


async def test_adjust_charges_more_than_was_reserved(backend: Backend) -> None:
    c = backend.counters
    assert (await c.check([RateCheck("tpm", 100, 3600.0, cost=50)])).allowed
    await c.adjust([RateAdjust("tpm", 100, 3600.0, +70)])  # used 120: over the limit
    refused = await c.check([RateCheck("tpm", 100, 3600.0, cost=1)])
    assert not refused.allowed
    assert 20 * 36.0 < _rate(refused.results[0]).retry_after_s <= 21 * 36.0


async def test_a_key_of_another_kind_is_a_counter_error(backend: Backend) -> None:
    c = backend.counters
    await c.put("text", "open")
    with pytest.raises(CounterError):
        await c.check([ReserveCheck("text", 1.0, 2.0)])
    with pytest.raises(CounterError):
        await c.check([RateCheck("text", 1, 60.0)])


@pytest.mark.services
async def test_redis_down_makes_check_and_adjust_raise_counter_error() -> None:
    c = RedisCounters(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        with pytest.raises(CounterError):
            await c.check([RateCheck("x", 1, 60.0)])
        with pytest.raises(CounterError):
            await c.adjust([Settle("x", 1.0, 0.0)])
    finally:
        await c.close()


async def test_on_memory_the_plain_calls_answer_as_check_and_adjust_do() -> None:
    """`check_now` / `adjust_now` (the policy plugins' calls on memory://) and the awaited
    `check` / `adjust` give the same answers and leave the same state, refusals too."""
    clock = spec.FakeClock()
    awaited, plain = MemoryCounters(clock=clock), MemoryCounters(clock=clock)
    batches: list[list[Check]] = [
        [
            RateCheck("rpm", 3, 60.0),
            RateCheck("tpm", 100, 60.0, 40),
            ReserveCheck("usd", 2.0, 5.0, 60.0),
        ],
        [
            RateCheck("rpm", 3, 60.0),
            RateCheck("tpm", 100, 60.0, 70),
            ReserveCheck("usd", 2.0, 5.0, 60.0),
        ],
        [RateCheck("rpm", 3, 60.0, cost=0), ReserveCheck("usd", 4.0, 5.0, 60.0)],
        [RateCheck("rpm", 3, 60.0), ReserveCheck("usd", 1.0, 5.0, 60.0)],
    ]
    for batch in batches:
        assert plain.check_now(batch) == await awaited.check(batch)
        clock.advance(1.0)
    adjustments: list[Adjustment] = [
        RateAdjust("tpm", 100, 60.0, -30),
        Settle("usd", 2.0, 0.5, 60.0),
    ]
    assert plain.adjust_now(adjustments) == await awaited.adjust(adjustments)
    assert plain._values == awaited._values and plain._expires == awaited._expires
    with pytest.raises(ValueError):
        plain.check_now([RateCheck("a", 0, 60.0)])
    with pytest.raises(ValueError):
        plain.check_now([ReserveCheck("a", -1.0, 5.0)])
    with pytest.raises(ValueError):
        plain.check_now([ReserveCheck("a", 1.0, 5.0), ReserveCheck("a", 1.0, 5.0)])
    with pytest.raises(CounterError):
        plain.check_now([ReserveCheck("tpm", 1.0, 5.0)])  # a rate bucket, not a number


async def test_on_memory_a_reservation_after_its_window_expired_starts_a_new_one() -> None:
    clock = spec.FakeClock()
    c = MemoryCounters(clock=clock)
    assert (await c.check([ReserveCheck("window", 1.0, 10.0, ttl_s=100.0)])).allowed
    clock.advance(101.0)  # the window ended: its counter is gone...
    assert (await c.check([ReserveCheck("window", 2.0, 10.0, ttl_s=100.0)])).allowed
    assert await c.get("window") == 2.0
    clock.advance(101.0)  # ...and the new window's counter ends too (it got a TTL)
    assert await c.get("window") == 0.0


def test_in_process_is_only_the_exact_memory_counters() -> None:
    """Wrappers and subclasses (tests counting or failing calls) keep the awaited calls."""

    class Sub(MemoryCounters):
        pass

    class Wrapper:
        def __init__(self, inner: MemoryCounters) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    counters = MemoryCounters()
    assert in_process(counters) is counters
    assert in_process(Sub()) is None
    assert in_process(Wrapper(counters)) is None
