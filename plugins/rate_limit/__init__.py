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
from interlock.core.counters import CounterError, RateAdjust, RateCheck, RateResult
from interlock.core.counters.gate import Gate
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
    keys: list[tuple[str, int]]  # (counter key, limit) of each token limit


class RateLimit(Plugin):
    name = "rate_limit"
    Config = RateLimitConfig
    needs_shared_counters: ClassVar[bool] = True

    def __init__(self, config: RateLimitConfig, services: Services) -> None:
        super().__init__(config, services)
        _validate(config, services.config.source)
        self.cfg = config
        self.counters = services.counters
        self.logger = services.logger
        self.settler = Settler(
            services.counters, services.spawn, services.logger, name="rate_limit-settle"
        )
        self._down = False
        # With budget later in plugins.toml, our checks travel in its counters call: one
        # round trip for both (core/counters/gate.py).
        order = [entry.name for entry in services.config.plugins if entry.enabled]
        self.defer = "budget" in order and order.index("budget") > order.index(self.name)

    # -- before forwarding ---------------------------------------------------------------
    @hookimpl
    async def pre_forward(self, ctx: RequestContext) -> None:
        cfg = self.cfg
        identity = ctx.identity
        tenant = identity.tenant if identity is not None else cfg.anonymous_tenant
        base = "rl:" + _part(tenant)
        scopes: list[tuple[str, str, str, int | None, int | None]] = []
        if identity is not None:
            limits = identity.tenant_limits
            rpm = limits.rpm if limits.rpm is not None else cfg.tenant.rpm
            tpm = limits.tpm if limits.tpm is not None else cfg.tenant.tpm
        else:
            rpm, tpm = cfg.tenant.rpm, cfg.tenant.tpm
        if rpm is not None or tpm is not None:
            scopes.append(("tenant", tenant, base, rpm, tpm))
        if identity is not None and identity.key_id is not None:
            limits = identity.key_limits
            rpm = limits.rpm if limits.rpm is not None else cfg.key.rpm
            tpm = limits.tpm if limits.tpm is not None else cfg.key.tpm
            if rpm is not None or tpm is not None:
                key_id = identity.key_id
                scopes.append(("key", key_id, f"{base}:k:{_part(key_id)}", rpm, tpm))
        if cfg.models:
            rates = cfg.models.get(ctx.requested_model)
            if rates is not None:
                model = ctx.requested_model
                scopes.append(("model", model, f"{base}:m:{_part(model)}", rates.rpm, rates.tpm))
        if cfg.features and ctx.tags:
            feature = ctx.tags.get("feature")
            rates = cfg.features.get(feature) if feature is not None else None
            if rates is not None and feature is not None:
                key = f"{base}:f:{_part(feature)}"
                scopes.append(("feature", feature, key, rates.rpm, rates.tpm))
        if not scopes:
            return
        await self._check(ctx, scopes)

    async def _check(
        self, ctx: RequestContext, scopes: list[tuple[str, str, str, int | None, int | None]]
    ) -> None:
        checks: list[RateCheck] = []
        what: list[_Limit] = []
        tokens = -1
        held: list[tuple[str, int]] = []
        for scope, name, key, rpm, tpm in scopes:
            if rpm is not None:
                _refuse_if_zero(rpm, scope, name, "requests")
                checks.append(RateCheck(key + ":r", rpm, PERIOD_S))
                what.append(_Limit(scope, name, "requests"))
            if tpm is not None:
                _refuse_if_zero(tpm, scope, name, "tokens")
                if tokens < 0:
                    tokens = self._tokens(ctx)
                checks.append(RateCheck(key + ":t", tpm, PERIOD_S, min(tokens, tpm)))
                what.append(_Limit(scope, name, "tokens"))
                held.append((key + ":t", tpm))
        if self.defer:  # budget, later in pre_forward, sends these with its own
            Gate.of(ctx.state).defer(
                checks,
                lambda results, applied: self._judge(
                    ctx, results, applied, what, checks, held, tokens
                ),
            )
            return
        try:
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
        self._judge(ctx, result.results, result.allowed, what, checks, held, tokens)

    def _judge(
        self,
        ctx: RequestContext,
        results: tuple[Any, ...],
        applied: bool,
        what: list[_Limit],
        checks: list[RateCheck],
        held: list[tuple[str, int]],
        tokens: int,
    ) -> None:
        """Headers always; 429 when one of our limits refused; the tokens to settle when
        the reservation was applied (a batch another plugin refused applied nothing)."""
        _add_headers(ctx, results, what)
        if not all(r.allowed for r in results):
            raise _refusal(results, what, checks)
        if applied and held:
            ctx.state["rate_limit"] = _Held(tokens, held)

    def _tokens(self, ctx: RequestContext) -> int:
        """The token reservation: the prompt estimate plus the output cap."""
        prompt = max(1, len(ctx.raw) // 4)  # the core's estimate (estimate_prompt_tokens)
        if ctx.endpoint != "chat":
            return prompt
        return prompt + _output_cap(ctx, self.cfg.default_max_tokens)

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
        adjustments = [
            RateAdjust(key, limit, PERIOD_S, used - min(held.tokens, limit))
            for key, limit in held.keys
            if used != min(held.tokens, limit)
        ]
        if self.defer:  # budget settles after us: one call for both
            Gate.of(ctx.state).defer_settle(adjustments)
        else:
            await self.settler.settle(adjustments)

    @hookimpl
    async def shutdown(self, services: Services) -> None:
        await self.settler.close()


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


def _output_cap(ctx: RequestContext, default: int) -> int:
    """`max_completion_tokens` or `max_tokens` from the request, else `default`."""
    cap = ctx.output_cap()
    return default if cap is None else cap


def _refuse_if_zero(limit: int, scope: str, name: str, unit: str) -> None:
    if limit < 1:  # an identity may carry 0: nothing is allowed
        raise GatewayError(
            429,
            "rate_limit_exceeded",
            f"rate limit: the {scope} '{name}' is allowed no {unit} per minute",
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


def _add_headers(ctx: RequestContext, results: tuple[Any, ...], what: list[_Limit]) -> None:
    """The tightest requests limit and the tightest tokens limit, OpenAI's way: the one
    with the fewest remaining (on a tie, the longer reset)."""
    tightest: dict[str, RateResult] = {}
    for result, limit in zip(results, what, strict=True):
        best = tightest.get(limit.unit)
        if (
            best is None
            or result.remaining < best.remaining
            or (result.remaining == best.remaining and result.reset_after_s > best.reset_after_s)
        ):
            tightest[limit.unit] = result
    for unit, result in tightest.items():
        name_limit, name_remaining, name_reset = _NAMES[unit]
        ctx.add_header(name_limit, str(result.limit))
        ctx.add_header(name_remaining, str(result.remaining))
        ctx.add_header(name_reset, duration(result.reset_after_s))


def _refusal(results: tuple[Any, ...], what: list[_Limit], checks: list[RateCheck]) -> GatewayError:
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
