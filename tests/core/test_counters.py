"""core/counters: one specification, run against both backends.

Every test in the first part runs on MemoryCounters (with a fake clock, so time moves
without sleeping) and on RedisCounters against the real Redis on 127.0.0.1:6379 (a
unique key prefix per test, removed afterwards). The Redis parameter is marked
`services`: CI fails when it skips. Where time must pass, memory moves its clock and
Redis checks the figures it answered (or the TTLs it set) instead of waiting.
"""

from __future__ import annotations

import asyncio
import math
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from interlock.core.config import ConfigError
from interlock.core.counters import CounterError, Counters, open_counters
from interlock.core.counters.memory import MemoryCounters
from interlock.core.counters.redis import RedisCounters

REDIS_URL = "redis://127.0.0.1:6379/0"
GUARD = 10.0  # seconds: a guard against hangs, never a wait for something to happen


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    kind: str  # "memory" | "redis"
    counters: Counters
    clock: FakeClock | None = None  # memory only
    raw: Redis | None = None  # redis only: a plain client to inspect TTLs
    prefix: str = ""


def _prefix() -> str:
    return f"interlock-test:{uuid.uuid4().hex}:"


async def _open_redis(prefix: str) -> RedisCounters:
    try:
        counters = await open_counters(REDIS_URL, prefix=prefix)
    except ConfigError:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    assert isinstance(counters, RedisCounters)
    return counters


async def _drop_prefix(raw: Redis, prefix: str) -> None:
    keys = [key async for key in raw.scan_iter(match=prefix + "*")]
    if keys:
        await raw.delete(*keys)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()
        yield Backend("memory", MemoryCounters(clock=clock), clock=clock)
        return
    prefix = _prefix()
    counters = await _open_redis(prefix)
    raw = Redis.from_url(REDIS_URL)
    try:
        yield Backend("redis", counters, raw=raw, prefix=prefix)
    finally:
        await _drop_prefix(raw, prefix)
        await raw.aclose()
        await counters.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- rate (GCRA) ----------------------------------------------------------------------------
async def test_a_burst_of_limit_passes_and_the_next_is_refused_with_an_honest_retry_after(
    backend: Backend,
) -> None:
    c = backend.counters
    results = [await c.rate("rpm", 5, 60.0) for _ in range(5)]
    assert [r.allowed for r in results] == [True] * 5
    assert [r.remaining for r in results] == [4, 3, 2, 1, 0]
    assert all(r.retry_after_s == 0.0 and r.limit == 5 for r in results)
    assert 0 < results[0].reset_after_s <= 12.0  # one unit drains in 60/5 s
    assert 48.0 < results[-1].reset_after_s <= 60.0

    refused = await c.rate("rpm", 5, 60.0)
    assert not refused.allowed
    assert refused.remaining == 0
    assert 0 < refused.retry_after_s <= 60.0 / 5  # one unit drains in period/limit
    assert 0 < refused.reset_after_s <= 60.0

    if backend.clock is not None:
        assert refused.retry_after_s == 12.0  # no time passed: exactly one interval
        backend.clock.advance(refused.retry_after_s - 0.001)
        assert not (await c.rate("rpm", 5, 60.0)).allowed  # not a moment too generous
        backend.clock.advance(0.001)
        again = await c.rate("rpm", 5, 60.0)
        assert again.allowed and again.remaining == 0  # ...and honest: it now succeeds


async def test_a_cost_takes_that_many_units_and_a_refusal_changes_nothing(
    backend: Backend,
) -> None:
    c = backend.counters
    first = await c.rate("tpm", 10, 3600.0, cost=7)
    assert first.allowed and first.remaining == 3
    refused = await c.rate("tpm", 10, 3600.0, cost=4)
    assert not refused.allowed
    assert refused.remaining == 3  # what would be allowed right now
    assert 0 < refused.retry_after_s <= 360.0  # one unit short: at most one interval
    fits = await c.rate("tpm", 10, 3600.0, cost=3)  # the refusal took nothing
    assert fits.allowed and fits.remaining == 0


async def test_a_cost_above_the_limit_is_never_allowed_and_says_so(backend: Backend) -> None:
    c = backend.counters
    refused = await c.rate("big", 10, 60.0, cost=11)
    assert not refused.allowed
    assert refused.retry_after_s == math.inf
    assert refused.remaining == 10
    assert (await c.rate("big", 10, 60.0, cost=10)).allowed  # and it took nothing


async def test_cost_zero_only_peeks(backend: Backend) -> None:
    c = backend.counters
    for _ in range(3):
        peek = await c.rate("peek", 3, 60.0, cost=0)
        assert peek.allowed and peek.remaining == 3 and peek.reset_after_s == 0.0
    assert [(await c.rate("peek", 3, 60.0)).allowed for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    peek = await c.rate("peek", 3, 60.0, cost=0)
    assert peek.remaining == 0


async def test_separate_keys_are_independent(backend: Backend) -> None:
    c = backend.counters
    assert [(await c.rate("tenant-a", 2, 60.0)).allowed for _ in range(3)] == [True, True, False]
    assert [(await c.rate("tenant-b", 2, 60.0)).allowed for _ in range(3)] == [True, True, False]


async def test_rate_adjust_gives_units_back_and_charges_more(backend: Backend) -> None:
    c = backend.counters
    for _ in range(5):
        assert (await c.rate("adj", 5, 3600.0)).allowed
    assert not (await c.rate("adj", 5, 3600.0)).allowed
    await c.rate_adjust("adj", 5, 3600.0, -2)
    assert [(await c.rate("adj", 5, 3600.0)).allowed for _ in range(3)] == [True, True, False]

    await c.rate_adjust("adj", 5, 3600.0, +3)  # over the limit: later requests wait longer
    refused = await c.rate("adj", 5, 3600.0)
    assert not refused.allowed
    assert 3 * 720.0 < refused.retry_after_s <= 4 * 720.0  # 3 over, plus the one asked


async def test_rate_adjust_never_goes_below_empty(backend: Backend) -> None:
    c = backend.counters
    assert (await c.rate("floor", 4, 3600.0)).allowed
    await c.rate_adjust("floor", 4, 3600.0, -100)  # far more than was taken
    assert [(await c.rate("floor", 4, 3600.0)).allowed for _ in range(5)] == [True] * 4 + [False]
    await c.rate_adjust("fresh", 4, 3600.0, -10)  # on a key never used: still just empty
    assert [(await c.rate("fresh", 4, 3600.0)).allowed for _ in range(5)] == [True] * 4 + [False]


async def test_a_bucket_drains_to_empty_and_no_further() -> None:
    clock = FakeClock()
    c = MemoryCounters(clock=clock)
    assert (await c.rate("idle", 3, 60.0)).allowed
    clock.advance(3600.0)  # long idle: the bucket is empty, not owed units
    assert [(await c.rate("idle", 3, 60.0)).allowed for _ in range(4)] == [True] * 3 + [False]


async def test_a_concurrent_burst_of_rate_calls_lets_exactly_the_limit_through(
    backend: Backend,
) -> None:
    results = await asyncio.gather(
        *(backend.counters.rate("burst", 100, 3600.0) for _ in range(1000))
    )
    assert sum(r.allowed for r in results) == 100


async def test_rate_rejects_arguments_no_limiter_can_honour(backend: Backend) -> None:
    c = backend.counters
    for limit, period, cost in [(0, 60.0, 1), (5, 0.0, 1), (5, 60.0, -1)]:
        with pytest.raises(ValueError):
            await c.rate("bad", limit, period, cost)


# -- reserve / settle -------------------------------------------------------------------
async def test_reserve_and_settle_arithmetic(backend: Backend) -> None:
    c = backend.counters
    first = await c.reserve("budget", 30.0, 100.0)
    assert (first.allowed, first.used, first.limit) == (True, 30.0, 100.0)
    over = await c.reserve("budget", 80.0, 100.0)
    assert (over.allowed, over.used) == (False, 30.0)  # unchanged
    exact = await c.reserve("budget", 70.0, 100.0)
    assert (exact.allowed, exact.used) == (True, 100.0)  # an exact fit is allowed

    assert await c.settle("budget", reserved=70.0, actual=52.5) == 82.5  # cost less
    assert await c.settle("budget", reserved=30.0, actual=0.0) == 52.5  # a release
    assert await c.settle("budget", reserved=2.5, actual=10.0) == 60.0  # cost more
    assert await c.get("budget") == 60.0
    assert (await c.reserve("budget", 40.0, 100.0)).allowed
    assert not (await c.reserve("budget", 0.5, 100.0)).allowed


async def test_settle_never_goes_below_zero(backend: Backend) -> None:
    # The window's key expired between reserve and settle: no free budget afterwards.
    assert await backend.counters.settle("gone", reserved=5.0, actual=1.0) == 0.0
    assert await backend.counters.get("gone") == 0.0


async def test_reserve_tolerates_float_noise_but_not_a_real_overrun(backend: Backend) -> None:
    c = backend.counters
    assert (await c.reserve("usd", 0.1, 0.3)).allowed
    assert (await c.reserve("usd", 0.2, 0.3)).allowed  # 0.1 + 0.2 > 0.3 in doubles
    assert not (await c.reserve("usd", 1e-6, 0.3)).allowed


async def test_a_concurrent_burst_of_1000_reserves_lets_exactly_100_through(
    backend: Backend,
) -> None:
    results = await asyncio.gather(
        *(backend.counters.reserve("spend", 1.0, 100.0) for _ in range(1000))
    )
    assert sum(r.allowed for r in results) == 100
    assert max(r.used for r in results) == 100.0
    assert await backend.counters.get("spend") == 100.0


@pytest.mark.services
async def test_two_redis_pools_sharing_a_burst_still_let_exactly_100_through() -> None:
    prefix = _prefix()
    one = await _open_redis(prefix)
    two = await _open_redis(prefix)  # its own connection pool, as another process would have
    raw = Redis.from_url(REDIS_URL)
    try:
        calls = [(one if i % 2 else two).reserve("shared", 1.0, 100.0) for i in range(1000)]
        results = await asyncio.gather(*calls)
        assert sum(r.allowed for r in results) == 100
        assert await one.get("shared") == await two.get("shared") == 100.0
        bursts = [(one if i % 2 else two).rate("shared-rate", 100, 3600.0) for i in range(1000)]
        assert sum(r.allowed for r in await asyncio.gather(*bursts)) == 100
    finally:
        await _drop_prefix(raw, prefix)
        await raw.aclose()
        await one.close()
        await two.close()


# -- numbers and strings ----------------------------------------------------------------
async def test_incr_and_get(backend: Backend) -> None:
    c = backend.counters
    assert await c.get("n") == 0.0
    assert await c.incr("n") == 1.0
    assert await c.incr("n", 2.5) == 3.5
    assert await c.incr("n", -0.5) == 3.0
    assert await c.get("n") == 3.0


async def test_set_if_absent_does_not_clobber(backend: Backend) -> None:
    c = backend.counters
    assert await c.set_if_absent("seed", 42.5)
    assert await c.get("seed") == 42.5
    assert not await c.set_if_absent("seed", 0.0)  # another replica seeded it first
    assert await c.get("seed") == 42.5
    await c.incr("spent", 5.0)
    assert not await c.set_if_absent("spent", 100.0)
    assert await c.get("spent") == 5.0
    assert (await c.reserve("seed", 7.5, 50.0)).used == 50.0  # a seed is a plain number


async def test_claim_is_true_for_exactly_one_caller(backend: Backend) -> None:
    c = backend.counters
    wins = await asyncio.gather(*(c.claim("probe", f"worker-{i}", 30.0) for i in range(50)))
    assert sum(wins) == 1
    assert await c.fetch("probe") == f"worker-{wins.index(True)}"


async def test_put_fetch_delete(backend: Backend) -> None:
    c = backend.counters
    assert await c.fetch("circuit") is None
    await c.put("circuit", "open")
    assert await c.fetch("circuit") == "open"
    await c.put("circuit", "half-open é")
    assert await c.fetch("circuit") == "half-open é"
    await c.delete("circuit")
    assert await c.fetch("circuit") is None
    await c.delete("circuit")  # deleting what is absent is fine
    await c.incr("num")
    await c.delete("num")
    assert await c.get("num") == 0.0
    assert await c.ping()


async def test_a_key_holds_one_kind_of_value(backend: Backend) -> None:
    c = backend.counters
    await c.put("state", "open")
    with pytest.raises(CounterError):
        await c.incr("state")
    with pytest.raises(CounterError):
        await c.reserve("state", 1.0, 10.0)
    with pytest.raises(CounterError):
        await c.rate("state", 5, 60.0)
    await c.incr("number")
    with pytest.raises(CounterError):
        await c.rate("number", 5, 60.0)


# -- TTLs -------------------------------------------------------------------------------
async def test_ttls_on_the_memory_backend_expire_with_its_clock() -> None:
    clock = FakeClock()
    c = MemoryCounters(clock=clock)
    await c.incr("window", 1.0, ttl_s=10.0)
    await c.put("state", "open", ttl_s=5.0)
    assert await c.claim("probe", "a", ttl_s=3.0)
    clock.advance(9.0)
    await c.incr("window", 1.0, ttl_s=10.0)  # a later write does not extend the window
    assert await c.get("window") == 2.0
    assert await c.fetch("state") is None
    assert await c.claim("probe", "b", ttl_s=3.0)  # the first claim expired
    clock.advance(1.0)
    assert await c.get("window") == 0.0
    assert (await c.reserve("window", 5.0, 5.0, ttl_s=2.0)).allowed  # a new window
    clock.advance(2.0)
    assert await c.get("window") == 0.0

    await c.put("kept", "x", ttl_s=1.0)
    await c.put("kept", "y")  # a put without a TTL keeps the key, like SET
    clock.advance(5.0)
    assert await c.fetch("kept") == "y"
    assert await c.set_if_absent("seed", 1.0, ttl_s=1.0)
    clock.advance(1.0)
    assert await c.set_if_absent("seed", 2.0)


async def test_the_memory_backend_drops_expired_keys_nobody_reads_again() -> None:
    clock = FakeClock()
    c = MemoryCounters(clock=clock)
    for i in range(3000):
        await c.claim(f"old-{i}", "x", ttl_s=1.0)
        await c.rate(f"rate-{i}", 10, 1.0)  # a bucket lives until it drains (0.1 s)
    clock.advance(2.0)
    for i in range(3000):
        await c.claim(f"new-{i}", "x", ttl_s=1.0)
    assert len(c) <= 3000  # without the sweep: 9,000


@pytest.mark.services
async def test_ttls_on_redis_are_set_once_per_window() -> None:
    prefix = _prefix()
    c = await _open_redis(prefix)
    raw = Redis.from_url(REDIS_URL)
    try:
        await c.incr("window", 1.0, ttl_s=50.0)
        first = await raw.pttl(prefix + "window")
        assert 0 < first <= 50_000
        await c.incr("window", 1.0, ttl_s=500.0)
        assert 0 < await raw.pttl(prefix + "window") <= first  # not extended
        assert (await c.reserve("budget", 1.0, 10.0, ttl_s=20.0)).allowed
        assert 0 < await raw.pttl(prefix + "budget") <= 20_000
        await c.settle("budget", 1.0, 0.5, ttl_s=500.0)
        assert 0 < await raw.pttl(prefix + "budget") <= 20_000
        await c.settle("fresh", 0.0, 2.0, ttl_s=30.0)
        assert 0 < await raw.pttl(prefix + "fresh") <= 30_000

        assert await c.claim("probe", "a", ttl_s=0.05)
        assert 0 < await raw.pttl(prefix + "probe") <= 50
        assert not await c.claim("probe", "b", ttl_s=0.05)
        await raw.pexpireat(prefix + "probe", 1)  # expire it now, without waiting
        assert await c.claim("probe", "c", ttl_s=0.05)

        await c.put("state", "open", ttl_s=5.0)
        assert 0 < await raw.pttl(prefix + "state") <= 5_000
        await c.put("state", "closed")
        assert await raw.pttl(prefix + "state") == -1  # like SET: no TTL now
        assert await c.set_if_absent("seed", 1.0, ttl_s=7.0)
        assert 0 < await raw.pttl(prefix + "seed") <= 7_000
        assert await c.set_if_absent("seed-forever", 1.0)
        assert await raw.pttl(prefix + "seed-forever") == -1

        result = await c.rate("rpm", 10, 60.0, cost=3)  # a bucket lives until it drains
        assert 0 < await raw.pttl(prefix + "rpm") <= math.ceil(result.reset_after_s * 1000)
        await c.rate_adjust("rpm", 10, 60.0, -3)
        assert await raw.exists(prefix + "rpm") == 0  # drained: nothing kept
    finally:
        await _drop_prefix(raw, prefix)
        await raw.aclose()
        await c.close()


# -- failures -----------------------------------------------------------------------------
async def test_redis_down_raises_counter_error_from_every_primitive() -> None:
    c = RedisCounters(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        calls = [
            c.rate("k", 5, 60.0),
            c.rate_adjust("k", 5, 60.0, -1),
            c.reserve("k", 1.0, 10.0),
            c.settle("k", 1.0, 0.0),
            c.incr("k"),
            c.get("k"),
            c.set_if_absent("k", 1.0),
            c.put("k", "v"),
            c.fetch("k"),
            c.claim("k", "v", 1.0),
            c.delete("k"),
        ]
        for call in calls:
            with pytest.raises(CounterError) as caught:
                await asyncio.wait_for(call, GUARD)
            assert isinstance(caught.value.__cause__, RedisError)
        assert await c.ping() is False
    finally:
        await c.close()


async def test_open_counters_on_unreachable_redis_names_host_port_never_password() -> None:
    port = _closed_port()
    with pytest.raises(ConfigError) as caught:
        await open_counters(f"redis://admin:s3cr3t-pw@127.0.0.1:{port}/0")
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "[counters]" in message
    assert "s3cr3t-pw" not in message


def test_the_redis_url_is_shown_without_its_credentials() -> None:
    c = RedisCounters("rediss://admin:s3cr3t-pw@cache.internal:6380/2?password=s3cr3t-pw")
    assert c.url == "rediss://***@cache.internal:6380/2"


async def test_a_hung_redis_times_out_into_counter_error() -> None:
    """A server that accepts and never answers: the socket timeout ends the call."""
    connections: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c = RedisCounters(f"redis://127.0.0.1:{port}/0", socket_timeout=0.05, max_connections=4)
    try:
        with pytest.raises(CounterError) as caught:
            await asyncio.wait_for(c.reserve("k", 1.0, 10.0), GUARD)
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert isinstance(caught.value.__cause__, RedisError | OSError)
        # Not retried: a script whose reply was lost may have run, and a reservation
        # sent twice would be charged twice.
        assert len(connections) == 1

        # A burst larger than the pool: every caller gets its answer, none waits forever.
        burst = [c.rate("k", 5, 60.0) for _ in range(12)]
        results = await asyncio.wait_for(asyncio.gather(*burst, return_exceptions=True), GUARD)
        assert all(isinstance(r, CounterError) for r in results)
    finally:
        await c.close()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "url", ["postgresql://root@127.0.0.1/test", "memcached://127.0.0.1:11211", "127.0.0.1:6379"]
)
async def test_an_unknown_scheme_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        await open_counters(url)
    assert "memory://" in str(caught.value)  # it says what would work


async def test_a_malformed_redis_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a valid Redis URL") as caught:
        await open_counters("redis://:s3cr3t-pw@127.0.0.1:notaport/0")
    assert "s3cr3t-pw" not in str(caught.value)


async def test_memory_is_the_default_backend() -> None:
    c = await open_counters("memory://")
    assert isinstance(c, MemoryCounters)
    assert c.url == "memory://"
    assert await c.ping()
    await c.close()
