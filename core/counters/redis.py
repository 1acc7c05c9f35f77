"""Counters in Redis (`redis://`, `rediss://`), shared by every worker and replica.

Every primitive is ONE round trip: a Lua script (loaded once at start-up, then called by
its SHA) where a read-modify-write must be atomic, one plain command where one suffices.
Rate limits read the Redis server's own clock (TIME, in µs) inside the script, so
replicas with skewed clocks agree. Numbers are doubles written with 17 significant
digits, so reserve, settle and incr compute bit for bit what the memory backend does.

A hung Redis must not hang requests: sockets time out (1 s by default), a bounded pool
makes a burst queue for a connection (5 s at most) rather than open thousands, and
nothing is retried (a script whose reply was lost may have run: retrying a reservation
could charge it twice). Every failure becomes `CounterError` (`raise ... from exc`);
the plugin decides whether to fail open or closed.

This module must never log, and never show the URL's password: messages name host:port.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from . import (
    Adjustment,
    Check,
    CheckResult,
    CounterError,
    RateCheck,
    RateResult,
    Reservation,
    Settle,
    check_batch,
    check_rate_args,
    check_ttl,
    redis_location,
)

__all__ = ["RedisCounters"]

_T = TypeVar("_T")
_FAILURES = (RedisError, OSError)  # OSError covers the builtin TimeoutError too

# -- the scripts ------------------------------------------------------------------------
# A rate bucket is one string, "LEVEL WHEN": the level in units and the server time in µs
# it was measured at (GCRA's continuous-state form). The level drains at one unit per
# interval (period / limit); a drained bucket is the same as an absent one, so its key
# expires when it would be empty. Integers of µs (~1.7e15) are exact in a Lua double.
_BUCKET = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = period / limit
local level = 0
local state = redis.call('GET', KEYS[1])
if state then
  local l, w = string.match(state, '^(%S+) (%S+)$')
  if not l then
    return redis.error_reply('WRONGTYPE counter key does not hold a rate bucket')
  end
  level = tonumber(l)
  local elapsed = now - tonumber(w)
  if elapsed > 0 then level = level - elapsed / 1000000 / interval end
  if level < 0 then level = 0 end
end
local function keep(value)
  redis.call('SET', KEYS[1], string.format('%.17g %.17g', value, now),
             'PX', math.ceil(value * interval * 1000))
end
"""

# ARGV: limit, period_s, cost -> {allowed, remaining, retry_after_s, reset_after_s}
_RATE = (
    _BUCKET
    + """
local cost = tonumber(ARGV[3])
local tolerance = limit * 1e-9
local after = level + cost
if after <= limit + tolerance then
  if cost > 0 then keep(after) end
  return {1, math.floor(limit - after + tolerance), '0', string.format('%.17g', after * interval)}
end
local retry = math.huge
if cost <= limit then retry = math.ceil((after - limit) * interval * 1000000) / 1000000 end
local remaining = math.floor(limit - level + tolerance)
if remaining < 0 then remaining = 0 end
return {0, remaining, string.format('%.17g', retry), string.format('%.17g', level * interval)}
"""
)

# ARGV: limit, period_s, delta
_RATE_ADJUST = (
    _BUCKET
    + """
level = level + tonumber(ARGV[3])
if level > 0 then keep(level) else redis.call('DEL', KEYS[1]) end
return 0
"""
)

# A number's TTL is given only when it has none: the first write of a window sets it.
_NUMBER = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if not current then
  return redis.error_reply('WRONGTYPE counter key does not hold a number')
end
local function keep(value, ttl_ms)
  redis.call('SET', KEYS[1], string.format('%.17g', value), 'KEEPTTL')
  if ttl_ms > 0 and redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ttl_ms)
  end
end
"""

# ARGV: amount, limit, ttl_ms (0: none) -> {allowed, used}
_RESERVE = (
    _NUMBER
    + """
local limit = tonumber(ARGV[2])
local used = current + tonumber(ARGV[1])
if used <= limit + 1e-9 * math.max(1, math.abs(limit)) then
  keep(used, tonumber(ARGV[3]))
  return {1, string.format('%.17g', used)}
end
return {0, string.format('%.17g', current)}
"""
)

# ARGV: delta, floor at zero ('1' or '0'), ttl_ms (0: none) -> the new value (incr, settle)
_ADD = (
    _NUMBER
    + """
local value = current + tonumber(ARGV[1])
if ARGV[2] == '1' and value < 0 then value = 0 end
keep(value, tonumber(ARGV[3]))
return string.format('%.17g', value)
"""
)


# Several limits of one request, all or nothing. KEYS: one per limit. ARGV: four per
# limit: 'r', limit, cost, period_s (a rate bucket) or 'b', limit, amount, ttl_ms (a
# reservation). Every limit is read and judged first; only when all fit is any written.
# -> {allowed, {per limit: allowed, remaining|used, retry_after_s, reset_after_s}...}
# A fitting limit of a refused batch answers its state without this request.
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local ok = true
local before, after, interval, out = {}, {}, {}, {}
for i = 1, n do
  local a = (i - 1) * 4
  local limit = tonumber(ARGV[a + 2])
  local amount = tonumber(ARGV[a + 3])
  local state = redis.call('GET', KEYS[i])
  if ARGV[a + 1] == 'r' then
    local iv = tonumber(ARGV[a + 4]) / limit
    local level = 0
    if state then
      local l, w = string.match(state, '^(%S+) (%S+)$')
      if not l then
        return redis.error_reply('WRONGTYPE counter key does not hold a rate bucket')
      end
      level = tonumber(l)
      local elapsed = now - tonumber(w)
      if elapsed > 0 then level = level - elapsed / 1000000 / iv end
      if level < 0 then level = 0 end
    end
    local tolerance = limit * 1e-9
    before[i], after[i], interval[i] = level, level + amount, iv
    if after[i] <= limit + tolerance then
      out[i] = {1, math.floor(limit - after[i] + tolerance), '0',
                string.format('%.17g', after[i] * iv)}
    else
      ok = false
      local retry = math.huge
      if amount <= limit then retry = math.ceil((after[i] - limit) * iv * 1000000) / 1000000 end
      local remaining = math.floor(limit - level + tolerance)
      if remaining < 0 then remaining = 0 end
      out[i] = {0, remaining, string.format('%.17g', retry), string.format('%.17g', level * iv)}
    end
  else
    local current = tonumber(state or '0')
    if not current then
      return redis.error_reply('WRONGTYPE counter key does not hold a number')
    end
    before[i], after[i] = current, current + amount
    if after[i] <= limit + 1e-9 * math.max(1, math.abs(limit)) then
      out[i] = {1, string.format('%.17g', after[i]), '0', '0'}
    else
      ok = false
      out[i] = {0, string.format('%.17g', current), '0', '0'}
    end
  end
end
for i = 1, n do
  local a = (i - 1) * 4
  if ok then
    if ARGV[a + 1] == 'r' then
      if tonumber(ARGV[a + 3]) > 0 then
        redis.call('SET', KEYS[i], string.format('%.17g %.17g', after[i], now),
                   'PX', math.ceil(after[i] * interval[i] * 1000))
      end
    else
      redis.call('SET', KEYS[i], string.format('%.17g', after[i]), 'KEEPTTL')
      local ttl_ms = tonumber(ARGV[a + 4])
      if ttl_ms > 0 and redis.call('PTTL', KEYS[i]) < 0 then
        redis.call('PEXPIRE', KEYS[i], ttl_ms)
      end
    end
  elseif out[i][1] == 1 then
    if ARGV[a + 1] == 'r' then
      local limit = tonumber(ARGV[a + 2])
      local remaining = math.floor(limit - before[i] + limit * 1e-9)
      if remaining < 0 then remaining = 0 end
      out[i] = {1, remaining, '0', string.format('%.17g', before[i] * interval[i])}
    else
      out[i] = {1, string.format('%.17g', before[i]), '0', '0'}
    end
  end
end
return {ok and 1 or 0, out}
"""

# Settles and rate adjustments of many requests, in order. ARGV: four per key: 'r',
# limit, period_s, delta (a rate bucket) or 'n', delta, ttl_ms, unused (a number never
# taken below zero). -> the new value of each.
_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
  local a = (i - 1) * 4
  local state = redis.call('GET', KEYS[i])
  if ARGV[a + 1] == 'r' then
    local iv = tonumber(ARGV[a + 3]) / tonumber(ARGV[a + 2])
    local level = 0
    if state then
      local l, w = string.match(state, '^(%S+) (%S+)$')
      if l then
        level = tonumber(l)
        local elapsed = now - tonumber(w)
        if elapsed > 0 then level = level - elapsed / 1000000 / iv end
        if level < 0 then level = 0 end
      end
    end
    level = level + tonumber(ARGV[a + 4])
    if level > 0 then
      redis.call('SET', KEYS[i], string.format('%.17g %.17g', level, now),
                 'PX', math.ceil(level * iv * 1000))
    else
      level = 0
      redis.call('DEL', KEYS[i])
    end
    out[i] = string.format('%.17g', level)
  else
    local value = (tonumber(state or '0') or 0) + tonumber(ARGV[a + 2])
    if value < 0 then value = 0 end
    redis.call('SET', KEYS[i], string.format('%.17g', value), 'KEEPTTL')
    local ttl_ms = tonumber(ARGV[a + 3])
    if ttl_ms > 0 and redis.call('PTTL', KEYS[i]) < 0 then
      redis.call('PEXPIRE', KEYS[i], ttl_ms)
    end
    out[i] = string.format('%.17g', value)
  end
end
return out
"""


def _ttl_ms(ttl_s: float | None) -> int:
    check_ttl(ttl_s)
    return 0 if ttl_s is None else max(1, math.ceil(ttl_s * 1000))


def _masked(url: str) -> str:
    """The URL for display: credentials and query (which may hold a password) removed."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = "***@" if "@" in parts.netloc else ""
    return f"{parts.scheme}://{userinfo}{host}{parts.path}"


class RedisCounters:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "interlock:",
        socket_timeout: float = 1.0,
        max_connections: int = 64,
        pool_timeout: float = 5.0,
    ) -> None:
        """No I/O here: `start()` connects. A bad URL raises ValueError.

        `socket_timeout` bounds each connect, send and reply; `pool_timeout` bounds the
        wait for a free connection when all `max_connections` are busy, so a burst
        queues (1,000 calls take ~0.2 s on loopback here) rather than fails, and a hung
        Redis, whose connections time out and come back every `socket_timeout`, still
        answers every caller with CounterError within about pool_timeout +
        socket_timeout."""
        self.url = _masked(url)
        self._where = redis_location(url)
        self._password = urlsplit(url).password
        self._prefix = prefix
        self._pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = Redis(connection_pool=self._pool)
        self._rate = self._redis.register_script(_RATE)
        self._rate_adjust = self._redis.register_script(_RATE_ADJUST)
        self._reserve = self._redis.register_script(_RESERVE)
        self._add = self._redis.register_script(_ADD)
        self._check = self._redis.register_script(_CHECK)
        self._adjust = self._redis.register_script(_ADJUST)

    async def start(self) -> None:
        """Check that Redis answers and load the scripts, so that the first call of each
        is already one round trip. Raises CounterError."""
        await self._call(self._redis.ping())
        scripts = (self._rate, self._rate_adjust, self._reserve, self._add, self._check)
        for script in (*scripts, self._adjust):
            await self._call(self._redis.script_load(script.script))

    async def _call(self, pending: Awaitable[_T]) -> _T:
        try:
            return await pending
        except _FAILURES as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if self._password:
                reason = reason.replace(self._password, "***")
            raise CounterError(f"Redis at {self._where}: {reason}") from exc

    async def _script(self, script: Any, key: str, *args: object) -> Any:
        return await self._call(script(keys=[self._prefix + key], args=args))

    # -- rate limits (GCRA) -------------------------------------------------------------
    async def rate(self, key: str, limit: int, period_s: float, cost: int = 1) -> RateResult:
        check_rate_args(limit, period_s, cost)
        allowed, remaining, retry, reset = await self._script(
            self._rate, key, limit, period_s, cost
        )
        return RateResult(allowed == 1, limit, int(remaining), float(retry), float(reset))

    async def rate_adjust(self, key: str, limit: int, period_s: float, delta: int) -> None:
        check_rate_args(limit, period_s, 0)
        await self._script(self._rate_adjust, key, limit, period_s, delta)

    # -- batches -------------------------------------------------------------------------
    async def check(self, checks: Sequence[Check]) -> CheckResult:
        if not checks:
            return CheckResult(True, ())
        check_batch(checks)
        prefix = self._prefix
        keys: list[str] = []
        args: list[str | int | float] = []
        for c in checks:
            keys.append(prefix + c.key)
            if isinstance(c, RateCheck):
                args += ("r", c.limit, c.cost, float(c.period_s))
            else:
                args += ("b", float(c.limit), float(c.amount), _ttl_ms(c.ttl_s))
        allowed, answers = await self._call(self._check(keys=keys, args=args))
        results: list[RateResult | Reservation] = []
        for c, (fits, count, retry, reset) in zip(checks, answers, strict=True):
            if isinstance(c, RateCheck):
                results.append(
                    RateResult(fits == 1, c.limit, int(count), float(retry), float(reset))
                )
            else:
                results.append(Reservation(fits == 1, float(count), c.limit))
        return CheckResult(allowed == 1, tuple(results))

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[float]:
        if not adjustments:
            return []
        prefix = self._prefix
        keys: list[str] = []
        args: list[str | int | float] = []
        for a in adjustments:
            keys.append(prefix + a.key)
            if isinstance(a, Settle):
                args += ("n", float(a.actual) - float(a.reserved), _ttl_ms(a.ttl_s), 0)
            else:
                check_rate_args(a.limit, a.period_s, 0)
                args += ("r", a.limit, float(a.period_s), a.delta)
        values = await self._call(self._adjust(keys=keys, args=args))
        return [float(v) for v in values]

    # -- numbers -------------------------------------------------------------------------
    async def reserve(
        self, key: str, amount: float, limit: float, ttl_s: float | None = None
    ) -> Reservation:
        if amount < 0:
            raise ValueError(f"reserve amount must be >= 0, got {amount}")
        allowed, used = await self._script(
            self._reserve, key, float(amount), float(limit), _ttl_ms(ttl_s)
        )
        return Reservation(allowed == 1, float(used), limit)

    async def settle(
        self, key: str, reserved: float, actual: float, ttl_s: float | None = None
    ) -> float:
        delta = float(actual) - float(reserved)
        return float(await self._script(self._add, key, delta, 1, _ttl_ms(ttl_s)))

    async def incr(self, key: str, amount: float = 1.0, ttl_s: float | None = None) -> float:
        return float(await self._script(self._add, key, float(amount), 0, _ttl_ms(ttl_s)))

    async def get(self, key: str) -> float:
        value = await self._call(self._redis.get(self._prefix + key))
        if value is None:
            return 0.0
        try:
            return float(value)
        except ValueError:
            raise CounterError(f"counter key {key!r} does not hold a number") from None

    async def set_if_absent(self, key: str, value: float, ttl_s: float | None = None) -> bool:
        ms = _ttl_ms(ttl_s) or None
        done = await self._call(
            self._redis.set(self._prefix + key, repr(float(value)), nx=True, px=ms)
        )
        return bool(done)

    # -- small strings -------------------------------------------------------------------
    async def put(self, key: str, value: str, ttl_s: float | None = None) -> None:
        ms = _ttl_ms(ttl_s) or None
        await self._call(self._redis.set(self._prefix + key, value, px=ms))

    async def fetch(self, key: str) -> str | None:
        value = await self._call(self._redis.get(self._prefix + key))
        if value is None or isinstance(value, str):
            return value
        return value.decode()

    async def claim(self, key: str, value: str, ttl_s: float) -> bool:
        ms = _ttl_ms(ttl_s)
        return bool(await self._call(self._redis.set(self._prefix + key, value, nx=True, px=ms)))

    async def delete(self, key: str) -> None:
        await self._call(self._redis.delete(self._prefix + key))

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except _FAILURES:
            return False

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.disconnect()
