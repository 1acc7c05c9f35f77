"""Shared atomic counters for the policy plugins: in process (default) or in Redis.

Rate limits, budgets and circuit breakers need a few primitives that stay atomic when a
thousand requests arrive at once, in one process or across workers and replicas. This
package gives them one interface, `Counters`, with two backends behind `open_counters`:

- `memory://` (`memory.py`): plain dicts on the event loop. No locks: a primitive never
  awaits inside, so it is atomic by construction. Each call costs about a microsecond
  (`python -m bench.counters`). Limits are per process: more than one worker needs
  Redis (the CLI refuses otherwise).
- `redis://host:port/db` or `rediss://` (`redis.py`): every primitive is ONE round trip
  (a Lua script or one plain command; ~0.2 ms on loopback on a small VM), so replicas
  share the limits exactly. Redis >= 6.0 (SET KEEPTTL); tested on 7.0. Any Redis
  failure (down, timeout, broken reply) raises `CounterError`; the plugin decides whether
  to fail closed (budgets) or open.

The primitives, what they are for and what they cost:

- `rate(key, limit, period_s, cost=1)`: a GCRA limiter (generic cell rate algorithm, kept
  in its continuous-state leaky-bucket form: the bucket's level in units and the time it
  was measured). At most `limit` units per `period_s`, a burst of up to `limit` at once;
  a refusal changes nothing and says honestly when to retry (never: `math.inf`, for a
  cost above `limit`). `cost=0` only peeks. Requests per minute and tokens per minute
  both use it. One script call; memory: about 1 µs.
- `rate_adjust(key, limit, period_s, delta)`: settle a token reservation made with `rate`
  once the real usage is known: give units back (`delta < 0`, never below an empty
  bucket) or charge more (`delta > 0`, may leave the bucket over its limit, so later
  requests wait). One script call.
- `reserve(key, amount, limit)` / `settle(key, reserved, actual)`: the budget pair.
  Reserve the worst case atomically before forwarding (`allowed=False` leaves the counter
  untouched, so a concurrent burst can never overspend); settle with the real cost
  afterwards (`actual=0` releases). `settle` never takes a counter below zero: a counter
  whose window expired in between must not hand out free budget. One script call each.
- `incr`, `get`, `set_if_absent`: plain numeric counters (spend per window, seeding a
  budget rebuilt from the ledger without clobbering what another replica already has).
  `incr` is one script call (its arithmetic is `settle`'s); `get` is GET and
  `set_if_absent` is SET NX (PX), one plain command each.
- `put`, `fetch`, `claim`, `delete`: small string values (circuit state); `claim` is
  SET-if-absent with a TTL, true for exactly one caller while the key lives (a half-open
  circuit lets one probe through). One plain command each.
- `check(checks)`: several limits of one request in ONE round trip, all or nothing: a
  list of `RateCheck` (a `rate` call) and `ReserveCheck` (a `reserve` call); when every
  one fits, all are applied, else none is and each result says how its limit stands
  (so a request refused by its key's limit does not use up its tenant's). One script
  call whatever the number of limits; memory: about 1 µs per limit. Keys must differ.
- `adjust(adjustments)`: the settle side of `check`, in ONE round trip: a list of
  `RateAdjust` (a `rate_adjust` call) and `Settle` (a `settle` call), applied in order;
  returns each key's new value. The policy plugins batch the settles of many requests
  into one call.
- `ping` (readiness: True or False, never raises), `close`.

TTLs: `put`, `set_if_absent` and `claim` set the key's TTL like Redis's SET does. `incr`,
`reserve` and `settle` give a key the TTL only when it has none yet (the first write of
a window), so a busy window still ends on time instead of sliding forever.

Numbers are IEEE doubles on both backends (Redis stores them with 17 significant digits,
so a value read back is the exact double written). `reserve` and `rate` compare with a
relative tolerance of 1e-9, so 0.1 + 0.2 fits a limit of 0.3 and a burst of exactly
`limit` units always fits; a whole extra unit never does.

Keys are the caller's: a plugin prefixes its own (`rate:`, `budget:`, `circuit:`...); the
Redis backend adds the deployment's prefix (`interlock:` by default) to every key. A key
holds one kind of value: a rate bucket, a number or a string.

This package never logs and never puts a password in an error: the Redis URL is shown as
host:port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

import msgspec

from ..config import ConfigError

__all__ = [
    "Adjustment",
    "Check",
    "CheckResult",
    "CounterError",
    "Counters",
    "RateAdjust",
    "RateCheck",
    "RateResult",
    "Reservation",
    "ReserveCheck",
    "Settle",
    "check_batch",
    "open_counters",
]


class CounterError(Exception):
    """The counters backend could not answer (Redis down/timeout). Plugins decide: fail
    closed or open."""


class RateResult(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int  # the limit asked for
    remaining: int  # how many more units would be allowed right now (after this one if allowed)
    # 0 when allowed; else seconds until `cost` units would be allowed (honest: retrying
    # after it succeeds). math.inf when cost > limit: such a call can never be allowed.
    retry_after_s: float
    reset_after_s: float  # seconds until the bucket is fully replenished


class Reservation(msgspec.Struct, frozen=True):
    allowed: bool
    used: float  # used amount after the call (spend + open reservations)
    limit: float


class RateCheck(msgspec.Struct, frozen=True):
    """One GCRA limit in a `check`: `cost` units against `limit` per `period_s`."""

    key: str
    limit: int
    period_s: float
    cost: int = 1


class ReserveCheck(msgspec.Struct, frozen=True):
    """One reservation in a `check`: `amount` against `limit` (spend + reservations)."""

    key: str
    amount: float
    limit: float
    ttl_s: float | None = None


Check = RateCheck | ReserveCheck


class CheckResult(msgspec.Struct, frozen=True):
    """`allowed` when every limit fitted (and all were applied). `results[i]` answers
    `checks[i]`: a `RateResult` or a `Reservation`. When the batch is refused nothing
    changed, and each result describes its limit as it stands: `allowed` says whether
    that limit alone would have fitted, `remaining` / `used` leave this request out,
    and a refused `RateResult`'s `retry_after_s` is honest for its own limit (the
    request fits once the largest `retry_after_s` of the refused ones has passed)."""

    allowed: bool
    results: tuple[RateResult | Reservation, ...]


class RateAdjust(msgspec.Struct, frozen=True):
    """`rate_adjust(key, limit, period_s, delta)` inside an `adjust` batch."""

    key: str
    limit: int
    period_s: float
    delta: int


class Settle(msgspec.Struct, frozen=True):
    """`settle(key, reserved, actual, ttl_s)` inside an `adjust` batch."""

    key: str
    reserved: float
    actual: float
    ttl_s: float | None = None


Adjustment = RateAdjust | Settle


class Counters(Protocol):
    url: str

    async def rate(self, key: str, limit: int, period_s: float, cost: int = 1) -> RateResult:
        """GCRA (generic cell rate algorithm): at most `limit` units per `period_s`, a
        burst of up to `limit` allowed; cost 0 only peeks. One Redis round trip (a Lua
        script)."""
        ...

    async def rate_adjust(self, key: str, limit: int, period_s: float, delta: int) -> None:
        """Settle a token reservation afterwards: give back (delta<0) or charge more
        (delta>0) units on the same GCRA key, never making the state go below 'empty'."""
        ...

    async def reserve(
        self, key: str, amount: float, limit: float, ttl_s: float | None = None
    ) -> Reservation:
        """Atomically: if current + amount <= limit then current += amount and
        allowed=True, else unchanged and allowed=False. The budget plugin reserves
        worst-case cost here."""
        ...

    async def settle(
        self, key: str, reserved: float, actual: float, ttl_s: float | None = None
    ) -> float:
        """current += actual - reserved (a release is actual=0), never below 0; returns
        the new value."""
        ...

    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        """current += amount; returns the new value."""
        ...

    async def get(self, key: str) -> float:
        """The number at `key`; 0.0 when absent."""
        ...

    async def set_if_absent(self, key: str, value: float, ttl_s: float | None = None) -> bool:
        """Seed a counter (budget rebuilt from the ledger at start-up) without clobbering
        a value another replica already has."""
        ...

    async def put(self, key: str, value: str, ttl_s: float | None = None) -> None:
        """Store a small string (circuit state)."""
        ...

    async def fetch(self, key: str) -> str | None:
        """The string at `key`; None when absent."""
        ...

    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        """SET NX with TTL: true for exactly one caller while the key lives (a half-open
        circuit lets a single probe through)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def check(self, checks: Sequence[Check]) -> CheckResult:
        """All or nothing, one round trip: if every rate limit and reservation in
        `checks` fits, apply them all; else change nothing. Keys must be distinct."""
        ...

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[float]:
        """Apply `rate_adjust`s and `settle`s in order, in one round trip; each key's
        new value (a bucket's level in units, a number's value)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def check_rate_args(limit: int, period_s: float, cost: int) -> None:
    """Reject arguments no limiter can honour (a programming error, not a backend one)."""
    if limit < 1:
        raise ValueError(f"rate limit must be >= 1, got {limit}")
    if not period_s > 0:
        raise ValueError(f"rate period_s must be > 0, got {period_s}")
    if cost < 0:
        raise ValueError(f"rate cost must be >= 0, got {cost}")


def check_batch(checks: Sequence[Check]) -> None:
    """Reject a batch no backend can answer: bad arguments, or a key twice (its two
    limits would each see the state without the other)."""
    keys = set()
    for c in checks:
        if isinstance(c, RateCheck):
            check_rate_args(c.limit, c.period_s, c.cost)
        else:
            if c.amount < 0:
                raise ValueError(f"reserve amount must be >= 0, got {c.amount}")
            check_ttl(c.ttl_s)
        keys.add(c.key)
    if len(keys) != len(checks):
        raise ValueError("check: every key in a batch must be distinct")


def check_ttl(ttl_s: float | None) -> None:
    if ttl_s is not None and not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0 or None, got {ttl_s}")


def redis_location(url: str) -> str:
    """host:port of a Redis URL, for messages: never the user or the password."""
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        return "an unparsable Redis URL"
    return f"{parts.hostname or 'localhost'}:{port}"


async def open_counters(url: str, *, prefix: str = "interlock:") -> Counters:
    """`memory://` or `redis://host:port/db` (also `rediss://`). Raises ConfigError (from
    interlock.core.config) for an unknown scheme, and ConfigError with a clear message
    naming the URL (host:port, never a password) when Redis is unreachable at start-up."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "memory":
        from .memory import MemoryCounters

        return MemoryCounters()
    if scheme in ("redis", "rediss"):
        from .redis import RedisCounters

        try:
            counters = RedisCounters(url, prefix=prefix)
        except ValueError as exc:  # redis-py's URL parser
            raise ConfigError(
                "[counters] key `url`: not a valid Redis URL "
                "(redis://[[USER]:PASSWORD@]HOST:PORT/DB, or rediss://)"
            ) from exc
        try:
            await counters.start()
        except CounterError as exc:
            await counters.close()
            raise ConfigError(
                f"[counters] key `url`: {exc} (is Redis running there? One worker can "
                'use [counters] url = "memory://")'
            ) from exc  # `exc` names host:port, never the password
        return counters
    what = f"'{scheme}://'" if scheme else "a URL without a scheme"
    raise ConfigError(
        f"[counters] key `url`: unsupported counters backend {what} "
        "(memory:// or redis://HOST:PORT/DB)"
    )
