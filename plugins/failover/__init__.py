"""failover: fallback chains, a circuit breaker per (provider, model), and retries.

- `pre_forward` (policy, may do I/O): appends to whatever the routers decided the other
  deployments of each model (providers listing the same model, unless `same_model =
  false`) and the fallback chain (`chains[model]`, else the models after it in `chain`,
  or the whole `chain` for a model not in it), then drops every candidate whose circuit
  is open. Candidates the caller's identity may not use are never added. When every
  circuit is open the request fails fast: 503 with the Retry-After of the nearest
  half-open time.
- `on_attempt` (after every try): the circuit learns the outcome (a retryable failure
  counts against it; an answer, even a 400, counts for it), and the next step is
  planned: a quick failure (5xx, connection error) is retried on the same deployment
  up to `retries` times after an exponential backoff with jitter; a slow or told-to-
  wait failure (timeout, 429/503 with Retry-After) moves on to the next candidate at
  once and retries the same one only when nothing else is left, never sooner than its
  Retry-After; no wait ever passes the request's deadline. A circuit that just opened
  loses its remaining entries. Headers: `x-interlock-attempts`, `x-interlock-route`.
- `post_response`: a half-open probe claimed for a candidate that was never tried is
  given back, so another request can probe.
- `GET /admin/circuits` (master key) shows every known circuit.

The core does the trying (one deadline, only retryable failures move on, a stream
only before its first event); this plugin only edits the candidate list and waits.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from interlock.core import (
    Attempt,
    Candidate,
    ConfigError,
    GatewayError,
    Plugin,
    Provider,
    RequestContext,
    Services,
    deployments_of,
    hookimpl,
)

from .admin import circuits_route
from .backoff import retry_wait
from .breaker import Circuit, Policy, Verdict, admit, view
from .circuits import Circuits

__all__ = ["Failover"]

ATTEMPTS_HEADER = "x-interlock-attempts"
ROUTE_HEADER = "x-interlock-route"
REASON_HEADER = "x-interlock-route-reason"
_UNSAFE = re.compile(r"[^\x20-\x7e]")
# Attempts that say nothing about the provider's health.
_NEUTRAL = frozenset({"deadline_exceeded", "unknown_provider"})
# Failures after which another deployment is better than the same one again.
_SLOW = frozenset({"upstream_timeout"})

Key = tuple[str, str]
# A request's candidates, each with its (provider, model) and its circuit's key.
_Plan = tuple[tuple[Candidate, Key, str], ...]


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[plugins.failover]`."""

    chain: list[str] = []  # global fallback chain of models
    chains: dict[str, list[str]] = {}  # per model: its fallbacks (wins over `chain`)
    same_model: bool = True  # providers listing the same model back each other up
    retries: int = 1  # extra tries of one deployment after a quick failure
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    max_retry_wait_s: float = 10.0  # a longer wait (a long Retry-After) is not waited
    failure_threshold: int = 5
    error_rate: float = 0.5
    min_requests: int = 10
    window_s: float = 60.0
    cooldown_s: float = 30.0
    # On Redis: a circuit read less than this long ago is not read again (0: every
    # request reads every candidate's circuit, one round trip each).
    circuit_cache_s: float = 1.0
    master_key: str | None = None  # "env:NAME": enables GET /admin/circuits


class _RequestState:
    """What pre_forward learnt, for on_attempt and post_response (ctx.state["failover"])."""

    __slots__ = ("circuits", "probes")

    def __init__(self) -> None:
        self.circuits: dict[Key, Circuit] = {}
        self.probes: list[tuple[Key, Circuit]] = []


def _header(text: str) -> str:
    """Printable ASCII only (no CR/LF: a reason can come from any router), 256 at most."""
    text = text[:256]
    return text if text.isascii() and text.isprintable() else _UNSAFE.sub("?", text)


class Failover(Plugin):
    name = "failover"
    Config = Settings

    _MAX_CACHED: ClassVar[int] = 10_000

    def __init__(self, config: Settings, services: Services) -> None:
        super().__init__(config, services)
        self.settings = config
        _validate(config)
        self.providers: Mapping[str, Provider] = services.providers
        self.logger = services.logger
        policy = Policy(
            failure_threshold=config.failure_threshold,
            error_rate=config.error_rate,
            min_requests=config.min_requests,
            window_s=config.window_s,
            cooldown_s=config.cooldown_s,
        )
        shared = not services.counters.url.startswith("memory://")
        self.circuits = Circuits(
            services.counters,
            policy,
            services.logger,
            cache_s=config.circuit_cache_s if shared else 0.0,
        )
        self.master_key = _master_key(config.master_key)
        # Replaceable in tests: the wait between retries and the jitter's draw.
        self.sleep = asyncio.sleep
        self.random = random.random
        self._fallbacks: dict[tuple[str, str], tuple[Candidate, ...]] = {}
        self._plans: dict[tuple[Any, ...], _Plan] = {}  # (endpoint, *candidates) -> plan
        self._route_headers: dict[Key, str] = {}
        self._seen: dict[Key, None] = {}  # circuits to show at /admin/circuits

    def secrets(self) -> list[str]:
        """Redacted from every log line by the core."""
        return [self.master_key] if self.master_key else []

    # -- the candidate list ----------------------------------------------------------------
    def fallbacks(self, model: str, endpoint: str) -> tuple[Candidate, ...]:
        """The candidates failover adds after a decision's `model` (cached per model)."""
        key = (model, endpoint)
        found = self._fallbacks.get(key)
        if found is not None:
            return found
        out: list[Candidate] = []
        if self.settings.same_model:
            out += deployments_of(model, self.providers)
        if endpoint == "chat":
            for fallback in self.chain_after(model):
                out += deployments_of(fallback, self.providers)
        found = tuple(out)
        if len(self._fallbacks) < self._MAX_CACHED:  # model names come from clients
            self._fallbacks[key] = found
        return found

    def chain_after(self, model: str) -> list[str]:
        s = self.settings
        if model in s.chains:
            return s.chains[model]
        if model in s.chain:
            return s.chain[s.chain.index(model) + 1 :]
        return s.chain

    def expand(self, ctx: RequestContext, candidates: list[Candidate]) -> list[Candidate]:
        return [entry[0] for entry in self._plan(ctx, candidates)]

    def _plan(self, ctx: RequestContext, candidates: list[Candidate]) -> _Plan:
        """The decision's candidates and what failover adds, each with its circuit's key.

        When the caller's identity lists no models it may use, the plan is a pure
        function of the endpoint and the candidates and is cached per both: at most
        10,000 plans (routers pass on model names clients chose), never invalidated (it
        derives from the configuration, fixed for the plugin's life)."""
        allowed = ctx.identity.models if ctx.identity is not None else None
        if allowed:
            return self._expand(ctx.endpoint, candidates, allowed)
        key = (ctx.endpoint, *candidates)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._expand(ctx.endpoint, candidates, None)
            if len(self._plans) < self._MAX_CACHED:
                self._plans[key] = plan
        return plan

    def _expand(self, endpoint: str, candidates: list[Candidate], allowed: Any) -> _Plan:
        out = list(candidates)
        seen = {(c.provider, c.model) for c in out}
        for model in dict.fromkeys(c.model for c in candidates):
            for extra in self.fallbacks(model, endpoint):
                key = (extra.provider, extra.model)
                if key in seen or (allowed and extra.model not in allowed):
                    continue
                seen.add(key)
                out.append(extra)
        return tuple((c, (c.provider, c.model), Circuits.key(c.provider, c.model)) for c in out)

    def route_header(self, provider: str, model: str) -> str:
        """`x-interlock-route` for a deployment, formatted once (bounded: see `_plan`)."""
        key = (provider, model)
        found = self._route_headers.get(key)
        if found is None:
            found = _header(f"{provider}/{model}")
            if len(self._route_headers) < self._MAX_CACHED:
                self._route_headers[key] = found
        return found

    # -- hooks -----------------------------------------------------------------------------
    @hookimpl
    async def pre_forward(self, ctx: RequestContext) -> None:
        decision = ctx.decision
        if decision is None or not decision.candidates:
            return
        state = _RequestState()
        ctx.state["failover"] = state
        circuits = self.circuits
        now = circuits.clock()
        kept: list[Candidate] = []
        skipped: list[str] = []
        nearest = math.inf
        for candidate, key, circuit_key in self._plan(ctx, decision.candidates):
            # Read without an await when possible (memory://, or a fresh copy on Redis).
            circuit = circuits.peek(circuit_key)
            if circuit is None:
                circuit = await circuits.get(*key)
            state.circuits[key] = circuit
            if not circuit.open:
                kept.append(candidate)
                continue
            verdict = admit(circuit, now)
            if verdict.verdict is Verdict.PASS:
                kept.append(candidate)
                continue
            if verdict.verdict is Verdict.PROBE:
                if await circuits.claim_probe(*key, circuit):
                    state.probes.append((key, circuit))
                    kept.append(candidate)
                    continue
                nearest = min(nearest, 1.0)  # another request is probing right now
            else:
                nearest = min(nearest, verdict.retry_after_s)
            skipped.append(f"{candidate.provider}/{candidate.model}")
        if skipped:
            decision.reason = f"{decision.reason}; circuit open: {', '.join(skipped)}"
        ctx.add_header(REASON_HEADER, _header(decision.reason))
        if not kept:
            raise GatewayError(
                503,
                "circuit_open",
                f"every provider for the model '{ctx.requested_model[:200]}' is failing "
                "and was taken out of service for a while; retry later",
                headers={"retry-after": str(max(1, math.ceil(nearest)))},
            )
        decision.candidates[:] = kept  # in place: it is the core's per-request copy

    @hookimpl
    async def on_attempt(self, ctx: RequestContext, attempt: Attempt) -> None:
        ctx.add_header(ATTEMPTS_HEADER, str(len(ctx.attempts)))
        ctx.add_header(ROUTE_HEADER, self.route_header(attempt.provider, attempt.model))
        key = (attempt.provider, attempt.model)
        if key not in self._seen and len(self._seen) < self._MAX_CACHED:
            self._seen[key] = None
        if attempt.error in _NEUTRAL:
            return
        failed = attempt.status != 200 and attempt.retryable
        state: _RequestState | None = ctx.state.get("failover")
        known = state.circuits.get(key) if state is not None else None
        if not failed and known is not None and known.clean:
            return  # a success on a clean circuit changes nothing (Circuits.learn's rule)
        circuit = await self.circuits.learn(*key, not failed, known)
        if state is not None:
            state.circuits[key] = circuit
        if failed and ctx.decision is not None:
            await self._after_failure(ctx, attempt, circuit)

    async def _after_failure(self, ctx: RequestContext, attempt: Attempt, circuit: Circuit) -> None:
        """Plan what follows a retryable failure by editing the candidates after the one
        just tried (the core tries `candidates[len(ctx.attempts)]` next)."""
        assert ctx.decision is not None
        decision = ctx.decision
        candidates = decision.candidates
        key = (attempt.provider, attempt.model)
        following = len(ctx.attempts)
        what = f"{attempt.provider}/{attempt.model} {attempt.status or attempt.error}"
        if circuit.open:
            # It just opened: none of its remaining entries will be tried.
            candidates[following:] = [
                c for c in candidates[following:] if (c.provider, c.model) != key
            ]
        others_left = any((c.provider, c.model) != key for c in candidates[following:])
        tries = sum(1 for a in ctx.attempts if (a.provider, a.model) == key)
        again = (
            not circuit.open
            and tries <= self.settings.retries
            and not (others_left and (attempt.retry_after_s is not None or attempt.error in _SLOW))
        )
        if again:
            s = self.settings
            wait = retry_wait(
                tries,
                base_s=s.backoff_base_s,
                max_s=s.backoff_max_s,
                jitter=self.random(),
                retry_after_s=attempt.retry_after_s,
                remaining_s=ctx.deadline - asyncio.get_running_loop().time(),
                max_wait_s=s.max_retry_wait_s,
            )
            if wait is not None:
                candidates.insert(following, Candidate(*key))
                decision.reason = f"{decision.reason}; retry {what}"
                ctx.add_header(REASON_HEADER, _header(decision.reason))
                if wait > 0:
                    await self.sleep(wait)
                return
        if following < len(candidates):
            decision.reason = f"{decision.reason}; failover from {what}"
            ctx.add_header(REASON_HEADER, _header(decision.reason))

    @hookimpl
    async def post_response(self, ctx: RequestContext) -> None:
        state: _RequestState | None = ctx.state.get("failover")
        if state is None or not state.probes:
            return
        tried = {(a.provider, a.model) for a in ctx.attempts}
        for key, circuit in state.probes:
            if key not in tried:
                await self.circuits.release_probe(*key, circuit)

    @hookimpl
    def register_routes(self) -> list[Any]:
        return [circuits_route(self.master_key, self.snapshot)]

    async def snapshot(self) -> list[dict[str, Any]]:
        """Every circuit this process knows of: the configured deployments, the chain's
        models, and every (provider, model) attempted since start-up."""
        keys: dict[Key, None] = {}
        for name, provider in self.providers.items():
            for model in provider.models:
                keys[(name, model)] = None
        for model in self.settings.chain + [m for c in self.settings.chains.values() for m in c]:
            for c in deployments_of(model, self.providers):
                keys[(c.provider, c.model)] = None
        keys.update(self._seen)
        now = self.circuits.clock()
        out: list[dict[str, Any]] = []
        for name, model in sorted(keys):
            circuit = await self.circuits.get(name, model, fresh=True)
            state = view(circuit, now)
            out.append(
                {
                    "provider": name,
                    "model": model,
                    "state": state,
                    "retry_after_s": round(circuit.until - now, 3) if state == "open" else 0.0,
                    "consecutive_failures": circuit.failures,
                    "window_errors": circuit.window_errors,
                    "window_total": circuit.window_total,
                }
            )
        return out


def _validate(s: Settings) -> None:
    where = "[plugins.failover]"
    checks = {
        "retries": s.retries >= 0,
        "backoff_base_s": s.backoff_base_s >= 0,
        "backoff_max_s": s.backoff_max_s >= s.backoff_base_s,
        "max_retry_wait_s": s.max_retry_wait_s >= 0,
        "failure_threshold": s.failure_threshold >= 1,
        "error_rate": 0 <= s.error_rate <= 1,
        "min_requests": s.min_requests >= 1,
        "window_s": s.window_s > 0,
        "cooldown_s": s.cooldown_s > 0,
        "circuit_cache_s": 0 <= s.circuit_cache_s <= 60,
    }
    for key, ok in checks.items():
        if not ok:
            raise ConfigError(f"{where} key `{key}`: {getattr(s, key)!r} is out of range")


def _master_key(ref: str | None) -> str | None:
    """`env:NAME` -> the variable's value (None when unset: the admin route refuses)."""
    if ref is None or ref == "":
        return None
    if not ref.startswith("env:") or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ref[4:]):
        raise ConfigError(
            "[plugins.failover] key `master_key`: must be an env:NAME reference, never the key"
        )
    return os.environ.get(ref[4:]) or None
