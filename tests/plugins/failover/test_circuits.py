"""Circuits kept in the counters backend: one key per (provider, model), nothing stored
for a healthy circuit, one probe per cool-down across replicas, failing open when the
backend is down. Run on memory:// and on the real Redis (several "replicas")."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from interlock.core.counters import CounterError, open_counters
from interlock.core.counters.memory import MemoryCounters
from interlock.plugins.failover.breaker import CLOSED, Policy
from interlock.plugins.failover.circuits import Circuits
from tests.plugins.routing import FakeClock, answer, gateway, provider, served
from tests.support import Reply

POLICY = Policy(failure_threshold=2, error_rate=0.0, cooldown_s=30.0)
LOG = structlog.get_logger()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    prefix = f"interlock-test-{os.urandom(6).hex()}:"
    try:
        backend = await open_counters("redis://127.0.0.1:6379/0", prefix=prefix)
    except Exception as exc:  # pragma: no cover - CI turns this skip into a failure
        pytest.skip(f"Redis is not reachable: {exc}")
    yield backend
    await backend.close()


async def test_a_healthy_circuit_is_never_written(counters: Any) -> None:
    clock = FakeClock()
    circuits = Circuits(counters, POLICY, LOG, clock=clock)
    assert await circuits.learn("p", "m", True, None) == CLOSED
    assert await counters.fetch(Circuits.key("p", "m")) is None
    await circuits.learn("p", "m", False, None)
    assert await counters.fetch(Circuits.key("p", "m")) is not None
    await circuits.learn("p", "m", True, None)  # counted in the error window
    assert (await circuits.get("p", "m")).window_total == 2
    clock.advance(POLICY.window_s)
    await circuits.learn("p", "m", True, None)  # the window is over: the key goes
    assert await counters.fetch(Circuits.key("p", "m")) is None


async def test_replicas_share_the_circuit_and_a_single_probe(counters: Any) -> None:
    clock = FakeClock()
    a = Circuits(counters, POLICY, LOG, clock=clock)
    b = Circuits(counters, POLICY, LOG, clock=clock)
    await a.learn("p", "m", False, None)
    opened = await b.learn("p", "m", False, None)  # the other replica's failure counts too
    assert opened.open
    assert (await a.get("p", "m")).open
    clock.advance(30)
    circuit = await a.get("p", "m")
    assert await a.claim_probe("p", "m", circuit) is True
    assert await b.claim_probe("p", "m", circuit) is False
    await a.release_probe("p", "m", circuit)  # never tried: give it back
    assert await b.claim_probe("p", "m", circuit) is True


class DownCounters:
    """A counters backend whose every call fails, as Redis does when it is down."""

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            raise CounterError("redis at 127.0.0.1:1 is unreachable")

        return fail


async def test_a_backend_that_is_down_fails_open_and_warns_once() -> None:
    circuits = Circuits(DownCounters(), POLICY, LOG, clock=FakeClock())  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        assert await circuits.get("p", "m") == CLOSED
        for _ in range(3):
            await circuits.learn("p", "m", False, None)
        assert await circuits.claim_probe("p", "m", CLOSED) is True
    assert [e["event"] for e in logs] == ["circuits_unavailable"]
    assert logs[0]["fail"] == "open"


@pytest.mark.services
async def test_two_gateways_on_redis_share_open_circuits(upstream, tmp_path: Path) -> None:
    """A circuit opened by one replica keeps the other replica's traffic away too."""
    fake, url = upstream
    name = f"primary{os.urandom(4).hex()}"  # a fresh circuit key in the shared Redis
    answer(fake, name, lambda r: Reply.json({"error": {"message": "down"}}, 500))
    answer(fake, "secondary")
    toml = (
        provider(name, url, ["gpt-4o"])
        + provider("secondary", url, ["gpt-4o"])
        + '\n[counters]\nurl = "redis://127.0.0.1:6379/0"\n'
        + "\n[plugins.failover]\nretries = 0\nfailure_threshold = 2\nerror_rate = 0.0\n"
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        await (await open_counters("redis://127.0.0.1:6379/0")).close()
    except Exception as exc:  # pragma: no cover - CI turns this skip into a failure
        pytest.skip(f"Redis is not reachable: {exc}")
    async with gateway(toml, tmp_path / "a") as one, gateway(toml, tmp_path / "b") as two:
        for _ in range(2):
            assert (await one.chat(model="gpt-4o")).status_code == 200
        resp = await two.chat(model="gpt-4o")
    assert resp.status_code == 200
    assert resp.headers["x-interlock-attempts"] == "1"  # the second replica never tried it
    assert served(fake) == [
        f"{name}/gpt-4o",
        "secondary/gpt-4o",
        f"{name}/gpt-4o",
        "secondary/gpt-4o",
        "secondary/gpt-4o",
    ]


class CountingCounters(MemoryCounters):
    """memory:// that counts reads: each would be a round trip on Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches = 0

    async def fetch(self, key: str) -> str | None:
        self.fetches += 1
        return await super().fetch(key)


async def test_a_circuit_read_is_reused_for_cache_s_and_what_we_learn_is_fresh() -> None:
    """With `cache_s` a busy gateway reads each circuit about once per `cache_s` (a round
    trip on Redis), not once per request; another replica's change shows at most that
    late; a failure is folded into the state as stored, never into an old copy."""
    counters = CountingCounters()
    mono = FakeClock()
    here = Circuits(counters, POLICY, LOG, clock=FakeClock(), cache_s=1.0, monotonic=mono)
    there = Circuits(counters, POLICY, LOG, clock=FakeClock())  # another replica, no copy
    for _ in range(5):
        assert await here.get("p", "m") == CLOSED
    assert counters.fetches == 1
    await there.learn("p", "m", False, None)
    await there.learn("p", "m", False, None)  # the other replica opens the circuit
    assert not (await here.get("p", "m")).open  # the copy, still within cache_s
    mono.advance(1.0)
    assert (await here.get("p", "m")).open  # read again: the other replica's verdict
    reads = counters.fetches
    assert (await here.get("p", "m", fresh=True)).open
    assert counters.fetches == reads + 1  # fresh: always a read
    # What this replica learns reads the stored state, and its copy follows at once.
    other = Circuits(counters, POLICY, LOG, clock=FakeClock(), cache_s=1.0, monotonic=mono)
    assert await other.get("p", "x") == CLOSED  # a copy of a healthy circuit...
    await there.learn("p", "x", False, None)  # ...one failure stored by the other replica
    assert (await other.learn("p", "x", False, None)).open  # two failures: open
    assert (await other.get("p", "x")).open  # the copy is the written state


async def test_no_copies_without_cache_s() -> None:
    counters = CountingCounters()
    circuits = Circuits(counters, POLICY, LOG, clock=FakeClock())
    for _ in range(3):
        await circuits.get("p", "m")
    assert counters.fetches == 3


async def test_peek_reads_memory_in_place_and_redis_only_from_a_fresh_copy() -> None:
    """`peek` (the per-request read without an await) answers what `get` would: on
    memory:// the stored state at once, another Circuits' writes included; on a backend
    with round trips only a copy younger than `cache_s`, else None (`get` reads)."""
    memory = MemoryCounters()
    here = Circuits(memory, POLICY, LOG, clock=FakeClock())
    there = Circuits(memory, POLICY, LOG, clock=FakeClock())
    key = Circuits.key("p", "m")
    assert here.peek(key) == CLOSED
    await there.learn("p", "m", False, None)
    assert here.peek(key) == await here.get("p", "m") != CLOSED
    await memory.put(key, "not json")
    assert here.peek(key) == CLOSED  # unreadable: healthy, as in get
    await memory.incr(Circuits.key("p", "n"))
    assert here.peek(Circuits.key("p", "n")) == CLOSED  # not a string: fails open
    counting = CountingCounters()  # a subclass: never read behind its back
    mono = FakeClock()
    remote = Circuits(counting, POLICY, LOG, clock=FakeClock(), cache_s=1.0, monotonic=mono)
    assert remote.peek(key) is None
    await remote.get("p", "m")
    assert remote.peek(key) == CLOSED and counting.fetches == 1
    mono.advance(1.0)
    assert remote.peek(key) is None
