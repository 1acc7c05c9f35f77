"""In-process counters (`memory://`): plain dicts on the event loop, for one worker.

No primitive awaits anything, so each runs to completion before another request's code
can: atomic without a lock. They run on every request, so they stay cheap: no locks, no
background task, no allocation beyond the answer. TTLs are expiry times on an injectable
monotonic clock (tests move a fake one), checked lazily when a key is read; a sweep after
every N writes (N = the number of keys, at least 1,024) drops expired keys nobody reads
again, so memory follows the live keys at an amortised O(1) per write.

This module must never await, sleep or start a task inside a primitive.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from . import (
    Adjustment,
    Check,
    CheckResult,
    CounterError,
    RateAdjust,
    RateCheck,
    RateResult,
    Reservation,
    ReserveCheck,
    Settle,
    check_batch,
    check_rate_args,
    check_ttl,
)

__all__ = ["MemoryCounters", "in_process"]

_TOLERANCE = 1e-9  # relative: float noise never refuses an exact fit nor admits a whole unit
_MIN_SWEEP = 1024  # writes between sweeps of expired keys, at least

_Value = float | str | tuple[float, float]  # a number, a string, a rate bucket (level, when)


def _ceil_us(seconds: float) -> float:
    """Round up to the microsecond, as the Redis backend must (its clock is in µs)."""
    return math.ceil(seconds * 1e6) / 1e6


def _fits(used: float, limit: float) -> bool:
    return used <= limit + _TOLERANCE * max(1.0, abs(limit))


def in_process(counters: object) -> MemoryCounters | None:
    """`counters` when they are exactly `MemoryCounters`, whose batch calls the policy
    plugins then make as plain calls (`check_now`, `adjust_now`: no coroutine per
    request); None for Redis and for any wrapper or subclass (tests that count or fail
    calls), which keep the awaited interface."""
    return counters if type(counters) is MemoryCounters else None


class MemoryCounters:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = "memory://"
        self._clock = clock
        self._values: dict[str, _Value] = {}
        self._expires: dict[str, float] = {}  # key -> clock time it dies
        self._writes = 0
        self._sweep_after = _MIN_SWEEP

    # -- rate limits (GCRA) -------------------------------------------------------------
    def _level(self, key: str, now: float, interval: float) -> float:
        """The bucket's level in units now: what it held, drained at one unit per interval."""
        state = self._values.get(key)
        if state is None:
            return 0.0
        if type(state) is not tuple:
            raise CounterError(f"counter key {key!r} does not hold a rate bucket")
        level, when = state
        level -= (now - when) / interval
        return level if level > 0.0 else 0.0

    def _keep_bucket(self, key: str, level: float, now: float, interval: float) -> None:
        self._values[key] = (level, now)
        self._expires[key] = now + level * interval  # drained: the same as absent
        self._wrote(now)

    async def rate(self, key: str, limit: int, period_s: float, cost: int = 1) -> RateResult:
        check_rate_args(limit, period_s, cost)
        now = self._clock()
        interval = period_s / limit
        level = self._level(key, now, interval)
        tolerance = limit * _TOLERANCE
        after = level + cost
        if after <= limit + tolerance:
            if cost:
                self._keep_bucket(key, after, now, interval)
            remaining = math.floor(limit - after + tolerance)
            return RateResult(True, limit, remaining, 0.0, after * interval)
        retry = math.inf if cost > limit else _ceil_us((after - limit) * interval)
        remaining = max(0, math.floor(limit - level + tolerance))
        return RateResult(False, limit, remaining, retry, level * interval)

    async def rate_adjust(self, key: str, limit: int, period_s: float, delta: int) -> None:
        check_rate_args(limit, period_s, 0)
        now = self._clock()
        interval = period_s / limit
        level = self._level(key, now, interval) + delta
        if level > 0.0:
            self._keep_bucket(key, level, now, interval)
        else:
            self._drop(key)

    # -- numbers -------------------------------------------------------------------------
    async def reserve(
        self, key: str, amount: float, limit: float, ttl_s: float | None = None
    ) -> Reservation:
        if amount < 0:
            raise ValueError(f"reserve amount must be >= 0, got {amount}")
        check_ttl(ttl_s)
        now = self._clock()
        current = self._number(key, now)
        used = current + amount
        if _fits(used, limit):
            self._keep_number(key, used, now, ttl_s)
            return Reservation(True, used, limit)
        return Reservation(False, current, limit)

    async def settle(
        self, key: str, reserved: float, actual: float, ttl_s: float | None = None
    ) -> float:
        check_ttl(ttl_s)
        now = self._clock()
        value = self._number(key, now) + (actual - reserved)
        if value < 0.0:
            value = 0.0
        self._keep_number(key, value, now, ttl_s)
        return value

    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        check_ttl(ttl_s)
        now = self._clock()
        value = self._number(key, now) + amount
        self._keep_number(key, value, now, ttl_s)
        return value

    async def get(self, key: str) -> float:
        return self._number(key, self._clock())

    async def set_if_absent(self, key: str, value: float, ttl_s: float | None = None) -> bool:
        check_ttl(ttl_s)
        now = self._clock()
        if self._live(key, now) is not None:
            return False
        self._set(key, float(value), now, ttl_s)
        return True

    # -- batches -------------------------------------------------------------------------
    async def check(self, checks: Sequence[Check]) -> CheckResult:
        return self.check_now(checks)

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[float]:
        return self.adjust_now(adjustments)

    def check_now(self, checks: Sequence[Check]) -> CheckResult:
        """`check` as a plain call: the policy plugins run it on every request, and on
        these counters an awaited coroutine would only add its own cost (`in_process`).

        One pass reads and judges every limit, noting the writes it would make; they
        happen only when everything fitted. Arguments, and that keys differ, are
        validated where they are read (ValueError, like `check_batch`), and the reads of
        `_level` / `_number` are inlined: this runs for each limit of each request."""
        now = self._clock()
        store = self._values
        expires = self._expires
        results: list[RateResult | Reservation] = []
        writes: list[tuple[str, _Value, float | None]] = []  # (key, value, expiry or None)
        seen: set[str] = set()
        allowed = True
        for c in checks:
            key = c.key
            if key in seen:
                check_batch(checks)  # raises: a key twice (nothing was written yet)
            seen.add(key)
            if type(c) is RateCheck or (type(c) is not ReserveCheck and isinstance(c, RateCheck)):
                limit, cost, period_s = c.limit, c.cost, c.period_s
                if limit < 1 or cost < 0 or not period_s > 0:
                    check_rate_args(limit, period_s, cost)
                interval = period_s / limit
                level = 0.0
                state = store.get(key)
                if state is not None:
                    if type(state) is not tuple:
                        raise CounterError(f"counter key {key!r} does not hold a rate bucket")
                    level = state[0] - (now - state[1]) / interval
                    if level < 0.0:
                        level = 0.0
                tolerance = limit * _TOLERANCE
                after = level + cost
                if after <= limit + tolerance:
                    reset = after * interval
                    remaining = math.floor(limit - after + tolerance)
                    results.append(RateResult(True, limit, remaining, 0.0, reset))
                    if cost:
                        writes.append((key, (after, now), now + reset))
                else:
                    allowed = False
                    retry = math.inf if cost > limit else _ceil_us((after - limit) * interval)
                    remaining = max(0, math.floor(limit - level + tolerance))
                    results.append(RateResult(False, limit, remaining, retry, level * interval))
            else:
                amount, ceiling, ttl_s = c.amount, c.limit, c.ttl_s
                if amount < 0 or (ttl_s is not None and not ttl_s > 0):
                    check_batch((c,))
                current = 0.0
                dies = expires.get(key)
                if dies is not None and dies <= now:  # expired: absent (lazy expiry)
                    self._drop(key)
                    dies = None
                else:
                    number = store.get(key)
                    if number is not None:
                        if type(number) is not float:
                            raise CounterError(f"counter key {key!r} does not hold a number")
                        current = number
                used = current + amount
                slack = abs(ceiling)
                if used <= ceiling + _TOLERANCE * (slack if slack > 1.0 else 1.0):  # _fits
                    results.append(Reservation(True, used, ceiling))
                    # A TTL only when the key has none (the window's first write).
                    writes.append((key, used, now + ttl_s if ttl_s and dies is None else None))
                else:
                    allowed = False
                    results.append(Reservation(False, current, ceiling))
        if not allowed:
            return CheckResult(False, self._as_they_stand(checks, results, now))
        for key, value, dies in writes:
            store[key] = value
            if dies is not None:
                expires[key] = dies
        if writes:
            self._wrote(now, len(writes))
        return CheckResult(True, tuple(results))

    def _as_they_stand(
        self, checks: Sequence[Check], results: list[RateResult | Reservation], now: float
    ) -> tuple[RateResult | Reservation, ...]:
        """The results of a refused batch: a fitting limit's state without this request
        (read again: nothing changed since `check_now` read it at `now`)."""
        answers: list[RateResult | Reservation] = []
        for c, result in zip(checks, results, strict=True):
            if result.allowed:
                if isinstance(c, RateCheck):
                    before = self._level(c.key, now, c.period_s / c.limit)
                else:
                    before = self._number(c.key, now)
                result = _unapplied(c, result, before)
            answers.append(result)
        return tuple(answers)

    def adjust_now(self, adjustments: Sequence[Adjustment]) -> list[float]:
        """`adjust` as a plain call (see `check_now`), applied in order, with the reads
        and writes of `_number` / `_keep_number` and `_level` / `_keep_bucket` inlined."""
        now = self._clock()
        store = self._values
        expires = self._expires
        answers: list[float] = []
        writes = 0
        for a in adjustments:
            key = a.key
            if type(a) is Settle or (type(a) is not RateAdjust and isinstance(a, Settle)):
                ttl_s = a.ttl_s
                if ttl_s is not None and not ttl_s > 0:
                    check_ttl(ttl_s)
                current = 0.0
                dies = expires.get(key)
                if dies is not None and dies <= now:  # expired: absent, and no TTL now
                    del expires[key]
                    dies = None
                else:
                    number = store.get(key)
                    if number is not None:
                        if type(number) is not float:
                            raise CounterError(f"counter key {key!r} does not hold a number")
                        current = number
                value = current + (a.actual - a.reserved)
                if value < 0.0:
                    value = 0.0
                store[key] = value
                if ttl_s is not None and dies is None:  # the window's first write
                    expires[key] = now + ttl_s
            else:
                limit, period_s = a.limit, a.period_s
                if limit < 1 or not period_s > 0:
                    check_rate_args(limit, period_s, 0)
                interval = period_s / limit
                level = 0.0
                state = store.get(key)
                if state is not None:
                    if type(state) is not tuple:
                        raise CounterError(f"counter key {key!r} does not hold a rate bucket")
                    level = state[0] - (now - state[1]) / interval
                    if level < 0.0:
                        level = 0.0
                value = level + a.delta
                if not value > 0.0:
                    value = 0.0
                    self._drop(key)
                    answers.append(value)
                    continue
                store[key] = (value, now)
                expires[key] = now + value * interval  # drained: the same as absent
            writes += 1
            answers.append(value)
        if writes:
            self._wrote(now, writes)
        return answers

    # -- small strings -------------------------------------------------------------------
    async def put(self, key: str, value: str, ttl_s: float | None = None) -> None:
        check_ttl(ttl_s)
        self._set(key, value, self._clock(), ttl_s)

    async def fetch(self, key: str) -> str | None:
        value = self._live(key, self._clock())
        if value is None or type(value) is str:
            return value
        raise CounterError(f"counter key {key!r} does not hold a string")

    def peek(self, key: str) -> str | None:
        """`fetch` without the await, for a caller that knows it holds a MemoryCounters
        (failover reads a circuit per candidate per request)."""
        value = self._live(key, self._clock())
        if value is None or type(value) is str:
            return value
        raise CounterError(f"counter key {key!r} does not hold a string")

    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        check_ttl(ttl_s)
        now = self._clock()
        if self._live(key, now) is not None:
            return False
        self._set(key, value, now, ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._drop(key)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    # -- storage -------------------------------------------------------------------------
    def _live(self, key: str, now: float) -> _Value | None:
        dies = self._expires.get(key)
        if dies is not None and dies <= now:
            self._drop(key)
            return None
        return self._values.get(key)

    def _number(self, key: str, now: float) -> float:
        value = self._live(key, now)
        if value is None:
            return 0.0
        if type(value) is not float:
            raise CounterError(f"counter key {key!r} does not hold a number")
        return value

    def _keep_number(self, key: str, value: float, now: float, ttl_s: float | None) -> None:
        """Write a number; a TTL only when the key has none (the window's first write)."""
        self._values[key] = value
        if ttl_s is not None and key not in self._expires:
            self._expires[key] = now + ttl_s
        self._wrote(now)

    def _set(self, key: str, value: _Value, now: float, ttl_s: float | None) -> None:
        """Write like Redis's SET: the value and its TTL (or none) replace what was there."""
        self._values[key] = value
        if ttl_s is None:
            self._expires.pop(key, None)
        else:
            self._expires[key] = now + ttl_s
        self._wrote(now)

    def _drop(self, key: str) -> None:
        self._values.pop(key, None)
        self._expires.pop(key, None)

    def _wrote(self, now: float, writes: int = 1) -> None:
        self._writes += writes
        if self._writes >= self._sweep_after:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for key in [key for key, dies in self._expires.items() if dies <= now]:
            self._drop(key)
        self._writes = 0
        self._sweep_after = max(_MIN_SWEEP, len(self._values))

    def __len__(self) -> int:
        """Keys held, expired or not yet swept (for tests and metrics)."""
        return len(self._values)


def _unapplied(
    check: Check, result: RateResult | Reservation, before: float
) -> RateResult | Reservation:
    """A fitting limit's result in a refused batch: its state as it stands, unchanged."""
    if not result.allowed:
        return result
    if isinstance(check, RateCheck):
        limit = check.limit
        remaining = max(0, math.floor(limit - before + limit * _TOLERANCE))
        return RateResult(True, limit, remaining, 0.0, before * check.period_s / limit)
    return Reservation(True, before, check.limit)
