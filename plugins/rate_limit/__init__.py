"""rate_limit: requests and tokens per minute, per tenant and per key, that hold across
replicas.

In `pre_forward` every limit that applies to the request (its tenant's, its key's, its
model's and its feature's, each in requests and in tokens per minute) is checked in ONE
all-or-nothing counters call (`Counters.check`: one Lua script on Redis), so a request
refused by its key's limit takes nothing from its tenant's, a concurrent burst lets
exactly the limit through, and replicas sharing Redis share the limit. The limiter is
GCRA (a burst of up to the limit, then one request per period/limit): no fixed window
that lets twice the limit through at its boundary.

Tokens are reserved before forwarding (the prompt estimate, four bytes a token, plus
`max_tokens`, or `default_max_tokens` when the request sets none) and settled to the
real usage in `post_response` (on Redis, the settles of concurrent requests share one
round trip: core/counters/settle.py).
A request bigger than a whole token limit is reserved at the limit: it passes only on
an empty bucket, and its real usage is charged afterwards.

Over a limit: 429 `rate_limit_exceeded` with an honest `Retry-After` (whole seconds,
rounded up; `retry-after-ms` too). On every response that reached this plugin: the
OpenAI-style `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` of the tightest
limit. Counters down: 503 (`on_counter_error = "closed"`, the default) or let through
(`"open"`), logged once per outage.

This module never logs per request and never awaits anything but the one counters call.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import msgspec

from interlock.core import ConfigError, GatewayError, Plugin, RequestContext, Services, hookimpl
from interlock.core.counters import CounterError, RateAdjust, RateCheck
from interlock.core.counters.gate import Gate
from interlock.core.counters.memory import in_process
from interlock.core.counters.settle import Settler

from .headers import duration

__all__ = ["RateLimit"]

PERIOD_S = 60.0  # limits are per minute


class Rates(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Requests and tokens per minute; None: no limit."""

    rpm: int | None = None
    tpm: int | None = None


class RateLimitConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Defaults for callers whose identity sets no limit (Identity.tenant_limits /
    # key_limits, from the auth plugin, take precedence).
    tenant: Rates = Rates()
    key: Rates = Rates()
    # Per tenant and requested model alias, and per tenant and feature tag (X-Feature).
    models: dict[str, Rates] = {}
    features: dict[str, Rates] = {}
    # When the counters store (Redis) cannot answer: refuse with 503, or let through.
    on_counter_error: Literal["closed", "open"] = "closed"
    # Output tokens reserved for a request that sets no max_tokens.
    default_max_tokens: int = 4096
    # The tenant a request without an identity (no auth plugin) counts against.
    anonymous_tenant: str = "anonymous"


class _Limit(msgspec.Struct, frozen=True):
    """One limit of one request: what is limited, for error messages and headers."""

    scope: str  # "tenant" | "key" | "model" | "feature"
    name: str
    unit: Literal["requests", "tokens"]


class _Held(msgspec.Struct):
    """What `pre_forward` reserved in tokens, for `post_response` to settle."""

    tokens: int
    keys: tuple[tuple[str, int], ...]  # (counter key, limit) of each token limit


class _Plan(msgspec.Struct, frozen=True):
    """The limits of one kind of request (one caller's limits, model and feature), built
    once (`RateLimit._plan`) instead of on every request: the counter keys, the
    requests checks themselves (cost 1: the same frozen Struct every time), and where
    the token checks go (their cost is the request's own)."""

    checks: tuple[RateCheck, ...]  # in order; a token check's cost is set per request
    tokens_at: tuple[int, ...]  # the positions of the token checks in `checks`
    what: tuple[_Limit, ...]  # checks[i] limits what[i]
    held: tuple[tuple[str, int], ...]  # (counter key, limit) of each token limit
    # Per unit, in the order units first appear: the header names and the checks' positions.
    headers: tuple[tuple[tuple[str, str, str], tuple[int, ...]], ...]
    zero: _Limit | None  # the first limit of 0 (an identity may carry it): always refused
    limit_texts: tuple[str, ...]  # str(checks[i].limit), for x-ratelimit-limit-*


_PlanKey = tuple[
    str, str | None, int | None, int | None, int | None, int | None, str | None, str | None
]
_MAX_PLANS = 10_000  # callers (tenant, key) x configured models and features; then cleared


class RateLimit(Plugin):
    name = "rate_limit"
    Config = RateLimitConfig
    needs_shared_counters: ClassVar[bool] = True

    def __init__(self, config: RateLimitConfig, services: Services) -> None:
        super().__init__(config, services)
        _validate(config, services.config.source)
        self.cfg = config
        self.counters = services.counters
        self.memory = in_process(services.counters)  # plain calls, no coroutine
        self.logger = services.logger
        self.settler = Settler(
            services.counters, services.spawn, services.logger, name="rate_limit-settle"
        )
        self._down = False
        # With budget later in plugins.toml, our checks travel in its counters call: one
        # round trip for both (core/counters/gate.py).
        order = [entry.name for entry in services.config.plugins if entry.enabled]
        self.defer = "budget" in order and order.index("budget") > order.index(self.name)
        # Plans by everything they derive from (the config is fixed), so a changed
        # identity's limits make a new entry; bounded: cleared past _MAX_PLANS.
        self._plans: dict[_PlanKey, _Plan | None] = {}

    # -- before forwarding ---------------------------------------------------------------
    @hookimpl
    async def pre_forward(self, ctx: RequestContext) -> None:
        cfg = self.cfg
        identity = ctx.identity
        model = ctx.requested_model if cfg.models and ctx.requested_model in cfg.models else None
        feature = ctx.tags.get("feature") if cfg.features and ctx.tags else None
        if feature is not None and feature not in cfg.features:
            feature = None
        if identity is None:
            key: _PlanKey = (cfg.anonymous_tenant, None, None, None, None, None, model, feature)
        else:
            tl, kl = identity.tenant_limits, identity.key_limits
            key = (identity.tenant, identity.key_id, tl.rpm, tl.tpm, kl.rpm, kl.tpm, model, feature)
        try:
            plan = self._plans[key]
        except KeyError:
            plan = self._plan(key)
        if plan is None:
            return
        if plan.zero is not None:
            raise _zero_refusal(plan.zero)
        checks = list(plan.checks)
        tokens = -1
        if plan.tokens_at:
            tokens = self._tokens(ctx)
            for i in plan.tokens_at:
                check = checks[i]
                limit = check.limit
                cost = tokens if tokens < limit else limit  # bigger: reserved at the limit
                checks[i] = RateCheck(check.key, limit, PERIOD_S, cost)
        if self.defer:  # budget, later in pre_forward, sends these with its own
            Gate.of(ctx.state).defer(
                checks,
                lambda results, applied: self._judge(ctx, results, applied, plan, checks, tokens),
            )
            return
        await self._check(ctx, plan, checks, tokens)

    def _plan(self, key: _PlanKey) -> _Plan | None:
        """The plan of `key` (see `_Plan`), remembered; None when no limit applies."""
        cfg = self.cfg
        tenant, key_id, t_rpm, t_tpm, k_rpm, k_tpm, model, feature = key
        base = "rl:" + _part(tenant)
        scopes: list[tuple[str, str, str, int | None, int | None]] = []
        rpm = t_rpm if t_rpm is not None else cfg.tenant.rpm
        tpm = t_tpm if t_tpm is not None else cfg.tenant.tpm
        if rpm is not None or tpm is not None:
            scopes.append(("tenant", tenant, base, rpm, tpm))
        if key_id is not None:
            rpm = k_rpm if k_rpm is not None else cfg.key.rpm
            tpm = k_tpm if k_tpm is not None else cfg.key.tpm
            if rpm is not None or tpm is not None:
                scopes.append(("key", key_id, f"{base}:k:{_part(key_id)}", rpm, tpm))
        if model is not None:
            rates = cfg.models[model]
            scopes.append(("model", model, f"{base}:m:{_part(model)}", rates.rpm, rates.tpm))
        if feature is not None:
            rates = cfg.features[feature]
            scopes.append(("feature", feature, f"{base}:f:{_part(feature)}", rates.rpm, rates.tpm))
        plan = _make_plan(scopes) if scopes else None
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    async def _check(
        self, ctx: RequestContext, plan: _Plan, checks: list[RateCheck], tokens: int
    ) -> None:
        try:
            if self.memory is not None:
                result = self.memory.check_now(checks)
            else:
                result = await self.counters.check(checks)
        except CounterError as exc:
            self._counters_down(exc)
            if self.cfg.on_counter_error == "open":
                return
            raise GatewayError(
                503,
                "rate_limit_unavailable",
                "rate limits cannot be checked right now (the counters store is "
                "unreachable); the request was not forwarded",
                headers={"retry-after": "1"},
            ) from None
        if self._down:
            self._down = False
            self.logger.info("rate_limit_counters_back")
        self._judge(ctx, result.results, result.allowed, plan, checks, tokens)

    def _judge(
        self,
        ctx: RequestContext,
        results: tuple[Any, ...],
        applied: bool,
        plan: _Plan,
        checks: list[RateCheck],
        tokens: int,
    ) -> None:
        """Headers always; 429 when one of our limits refused; the tokens to settle when
        the reservation was applied (a batch another plugin refused applied nothing).

        The headers are OpenAI's, for the tightest requests limit and the tightest
        tokens limit: the one with the fewest remaining (on a tie, the longer reset).
        They go straight into the dict `ctx.add_header` fills: six a request."""
        headers = ctx.response_headers
        if headers is None:
            headers = ctx.response_headers = {}
        for (name_limit, name_remaining, name_reset), at in plan.headers:
            tightest = at[0]
            best = results[tightest]
            for i in at[1:]:
                result = results[i]
                if result.remaining < best.remaining or (
                    result.remaining == best.remaining and result.reset_after_s > best.reset_after_s
                ):
                    tightest, best = i, result
            headers[name_limit] = plan.limit_texts[tightest]
            headers[name_remaining] = str(best.remaining)
            headers[name_reset] = duration(best.reset_after_s)
        if not applied and not all(r.allowed for r in results):
            raise _refusal(results, plan.what, checks)
        if applied and plan.held:
            ctx.state["rate_limit"] = _Held(tokens, plan.held)

    def _tokens(self, ctx: RequestContext) -> int:
        """The token reservation: the prompt estimate plus the output cap."""
        prompt = max(1, len(ctx.raw) // 4)  # the core's estimate (estimate_prompt_tokens)
        if ctx.endpoint != "chat":
            return prompt
        cap = ctx.output_cap()  # max_completion_tokens or max_tokens, else the default
        return prompt + (self.cfg.default_max_tokens if cap is None else cap)

    def _counters_down(self, exc: CounterError) -> None:
        if not self._down:
            self._down = True
            self.logger.error(
                "rate_limit_counters_down",
                error=str(exc),
                on_counter_error=self.cfg.on_counter_error,
            )

    # -- after the response --------------------------------------------------------------
    @hookimpl
    async def post_response(self, ctx: RequestContext) -> None:
        held: _Held | None = ctx.state.get("rate_limit")
        if held is None:
            return
        used = ctx.usage.prompt_tokens + ctx.usage.completion_tokens
        tokens = held.tokens
        adjustments = [
            RateAdjust(key, limit, PERIOD_S, used - reserved)
            for key, limit in held.keys
            if used != (reserved := tokens if tokens < limit else limit)
        ]
        if self.defer:  # budget settles after us: one call for both
            Gate.of(ctx.state).defer_settle(adjustments)
        elif self.settler.memory is not None:
            self.settler.settle_now(adjustments)
        else:
            await self.settler.settle(adjustments)

    @hookimpl
    async def shutdown(self, services: Services) -> None:
        await self.settler.close()


def _make_plan(scopes: list[tuple[str, str, str, int | None, int | None]]) -> _Plan:
    """Each scope's requests limit, then its tokens limit, in scope order."""
    checks: list[RateCheck] = []
    what: list[_Limit] = []
    tokens_at: list[int] = []
    held: list[tuple[str, int]] = []
    zero: _Limit | None = None
    for scope, name, key, rpm, tpm in scopes:
        for unit, limit, suffix in (("requests", rpm, ":r"), ("tokens", tpm, ":t")):
            if limit is None:
                continue
            limited = _Limit(scope, name, unit)  # type: ignore[arg-type]
            if limit < 1 and zero is None:
                zero = limited
            if unit == "tokens":
                tokens_at.append(len(checks))
                held.append((key + suffix, limit))
            checks.append(RateCheck(key + suffix, limit, PERIOD_S))
            what.append(limited)
    units: dict[str, list[int]] = {}
    for i, limited in enumerate(what):
        units.setdefault(limited.unit, []).append(i)
    return _Plan(
        checks=tuple(checks),
        tokens_at=tuple(tokens_at),
        what=tuple(what),
        held=tuple(held),
        headers=tuple((_NAMES[unit], tuple(at)) for unit, at in units.items()),
        zero=zero,
        limit_texts=tuple(str(check.limit) for check in checks),
    )


def _validate(cfg: RateLimitConfig, source: str) -> None:
    where = f"{source}: [plugins.rate_limit]"
    named: list[tuple[str, Rates]] = [("tenant", cfg.tenant), ("key", cfg.key)]
    named += [(f"models.{m}", r) for m, r in cfg.models.items()]
    named += [(f"features.{f}", r) for f, r in cfg.features.items()]
    for label, rates in named:
        for unit, value in (("rpm", rates.rpm), ("tpm", rates.tpm)):
            if value is not None and value < 1:
                raise ConfigError(f"{where} key `{label}.{unit}`: must be at least 1 (or absent)")
    if cfg.default_max_tokens < 1:
        raise ConfigError(f"{where} key `default_max_tokens`: must be at least 1")


def _part(value: str) -> str:
    """A name as one segment of a counter key: `:` (the separator) and `%` escaped."""
    if ":" in value or "%" in value:
        return value.replace("%", "%25").replace(":", "%3A")
    return value


def _zero_refusal(limit: _Limit) -> GatewayError:
    """A limit of 0 (an identity may carry it): nothing is allowed."""
    return GatewayError(
        429,
        "rate_limit_exceeded",
        f"rate limit: the {limit.scope} '{limit.name}' is allowed no {limit.unit} per minute",
        code="rate_limit_exceeded",
    )


_NAMES = {
    unit: (
        f"x-ratelimit-limit-{unit}",
        f"x-ratelimit-remaining-{unit}",
        f"x-ratelimit-reset-{unit}",
    )
    for unit in ("requests", "tokens")
}


def _refusal(
    results: tuple[Any, ...], what: tuple[_Limit, ...], checks: list[RateCheck]
) -> GatewayError:
    """429 naming the limit that needs the longest wait, and that wait."""
    worst = max(
        (i for i, r in enumerate(results) if not r.allowed),
        key=lambda i: results[i].retry_after_s,
    )
    limit, check = what[worst], checks[worst]
    wait = results[worst].retry_after_s
    seconds = max(1, math.ceil(wait)) if math.isfinite(wait) else None
    asked = "" if limit.unit == "requests" else f" (this request needs {check.cost})"
    when = f"; retry after {seconds} s" if seconds is not None else ""
    headers = {}
    if seconds is not None:
        headers = {"retry-after": str(seconds), "retry-after-ms": str(math.ceil(wait * 1000))}
    return GatewayError(
        429,
        "rate_limit_exceeded",
        f"rate limit reached for the {limit.scope} '{limit.name}': {check.limit} "
        f"{limit.unit} per minute{asked}{when}",
        code="rate_limit_exceeded",
        headers=headers,
    )
