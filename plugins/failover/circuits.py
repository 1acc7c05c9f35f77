"""Where the circuits live: one small JSON value per (provider, model) in the counters
backend (in process, or Redis so every replica sees the same circuits).

Keys: `circuit:PROVIDER/MODEL` holds a `breaker.Circuit`; a healthy circuit is not
stored at all, so the common case costs one `fetch` that finds nothing. A half-open
circuit's single probe is `claim`ed under `circuit-probe:PROVIDER/MODEL:UNTIL` (one key
per cool-down, so the next cool-down gets its own probe); the claim expires after the
cool-down, so a probe that never reports back does not keep the circuit shut forever.

On Redis a read is a round trip, and every request reads each candidate's circuit: with
`cache_s` > 0 a circuit read in the last `cache_s` seconds is answered from this
process's copy (a healthy one most of the time), so a busy gateway reads each circuit
about once per `cache_s`, not once per request. What this process learns itself is
always read fresh and written through to the copy; a circuit another replica opened or
closed is seen here at most `cache_s` late. On `memory://` there is no copy (a read
costs nothing). `peek` is the per-request read without an await: the copy when it is
fresh, memory:// read in place, else None (then `get` does the round trip).

Updates are fetch-then-put: on `memory://` nothing runs in between (no await
suspends), on Redis two replicas may interleave and lose one count, which only delays
an opening by a request. Transitions are logged (`circuit_opened`, `circuit_half_open`,
`circuit_closed`). When the counters backend is down, circuits fail open (every
request passes, nothing is learned) and a warning is logged, at most once a minute.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import msgspec

from interlock.core.counters import CounterError, Counters
from interlock.core.counters.memory import MemoryCounters

from .breaker import CLOSED, Circuit, Policy, record, view

__all__ = ["Circuits"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Circuit).decode
_WARN_EVERY_S = 60.0
_MAX_COPIES = 10_000


class Circuits:
    def __init__(
        self,
        counters: Counters,
        policy: Policy,
        logger: Any,
        clock: Callable[[], float] = time.time,
        *,
        cache_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counters = counters
        self.policy = policy
        self.logger = logger
        # Wall-clock seconds: replicas sharing Redis compare each other's `until`.
        self.clock = clock
        self._warned = float("-inf")
        self.cache_s = cache_s
        self._monotonic = monotonic
        self._copies: dict[str, tuple[Circuit, float]] = {}  # key -> (circuit, read at)
        # memory:// itself (not a subclass that may count or fail its reads): read in place.
        self._in_place = counters.peek if type(counters) is MemoryCounters else None

    @staticmethod
    def key(provider: str, model: str) -> str:
        return f"circuit:{provider}/{model}"

    async def get(self, provider: str, model: str, *, fresh: bool = False) -> Circuit:
        """The circuit's state; within `cache_s` of the last read, that read's answer
        (unless `fresh`)."""
        key = self.key(provider, model)
        if self.cache_s and not fresh:
            copy = self._copies.get(key)
            if copy is not None and self._monotonic() - copy[1] < self.cache_s:
                return copy[0]
        try:
            raw = await self.counters.fetch(key)
        except CounterError as exc:
            self._unavailable(exc)
            return CLOSED
        circuit = CLOSED
        if raw is not None:
            with contextlib.suppress(msgspec.MsgspecError):  # unreadable: treated as healthy
                circuit = _decode(raw)
        self._remember(key, circuit)
        return circuit

    def peek(self, key: str) -> Circuit | None:
        """The circuit under `key` (`Circuits.key`) when it can be had without I/O: the
        copy if read less than `cache_s` ago, or memory:// read in place (what `get`
        would answer); None when only `get` can answer (a round trip)."""
        if self.cache_s:
            copy = self._copies.get(key)
            if copy is not None and self._monotonic() - copy[1] < self.cache_s:
                return copy[0]
        if self._in_place is None:
            return None
        try:
            raw = self._in_place(key)
        except CounterError as exc:
            self._unavailable(exc)
            return CLOSED
        if raw is None:
            return CLOSED
        try:
            return _decode(raw)
        except msgspec.MsgspecError:  # unreadable: treated as healthy, as in `get`
            return CLOSED

    def _remember(self, key: str, circuit: Circuit) -> None:
        if self.cache_s:
            if len(self._copies) >= _MAX_COPIES:
                self._copies.clear()  # bounded; circuits are read again as needed
            self._copies[key] = (circuit, self._monotonic())

    async def learn(self, provider: str, model: str, ok: bool, known: Circuit | None) -> Circuit:
        """Fold one outcome into the circuit. `known` is the state read for this request
        moments ago: a success on a circuit that was clean then costs no round trip."""
        if ok and known is not None and known.clean:
            return known
        before = await self.get(provider, model, fresh=True)
        now = self.clock()
        after = record(before, ok, now, self.policy)
        if after == before:
            return after
        try:
            await self._store(provider, model, after, now)
        except CounterError as exc:
            self._unavailable(exc)
            return after
        self._log_change(provider, model, before, after, now)
        return after

    async def _store(self, provider: str, model: str, circuit: Circuit, now: float) -> None:
        key = self.key(provider, model)
        self._remember(key, circuit)
        if circuit == CLOSED:
            await self.counters.delete(key)
            return
        policy = self.policy
        if circuit.open:
            # Kept past the cool-down, so the circuit is still half-open (one probe) then.
            ttl = (circuit.until - now) + policy.cooldown_s + policy.window_s
        else:
            ttl = policy.window_s
        await self.counters.put(key, _encode(circuit).decode(), ttl_s=max(ttl, 1.0))

    def _log_change(
        self, provider: str, model: str, before: Circuit, after: Circuit, now: float
    ) -> None:
        was = view(before, now)
        if after.open and was != "open":
            self.logger.warning(
                "circuit_opened",
                provider=provider,
                model=model,
                was=was,
                consecutive_failures=before.failures + 1 if was == "closed" else None,
                window_errors=before.window_errors + 1 if was == "closed" else None,
                window_total=before.window_total + 1 if was == "closed" else None,
                cooldown_s=self.policy.cooldown_s,
            )
        elif not after.open and before.open:
            self.logger.info("circuit_closed", provider=provider, model=model, was=was)

    # -- the half-open probe --------------------------------------------------------------
    def _probe_key(self, provider: str, model: str, circuit: Circuit) -> str:
        return f"circuit-probe:{provider}/{model}:{circuit.until!r}"

    async def claim_probe(self, provider: str, model: str, circuit: Circuit) -> bool:
        """True for exactly one request (across replicas) per cool-down."""
        try:
            won = await self.counters.claim(
                self._probe_key(provider, model, circuit), "1", ttl_s=self.policy.cooldown_s
            )
        except CounterError as exc:
            self._unavailable(exc)
            return True  # fail open
        if won:
            self.logger.info("circuit_half_open", provider=provider, model=model)
        return won

    async def release_probe(self, provider: str, model: str, circuit: Circuit) -> None:
        """A probe that was claimed but never tried (an earlier candidate answered)."""
        try:
            await self.counters.delete(self._probe_key(provider, model, circuit))
        except CounterError as exc:
            self._unavailable(exc)

    def _unavailable(self, exc: CounterError) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            self.logger.warning("circuits_unavailable", error=str(exc)[:200], fail="open")
