"""budget: USD budgets per tenant, key, feature and model that a concurrent burst cannot
overspend, on one process or many.

Checking `spent >= limit` before forwarding lets a burst pass together and overspend.
Instead, `pre_forward` reserves the request's worst-case cost (cost.py) against every
budget that applies, in ONE all-or-nothing counters call (`Counters.check`: a Lua script
on Redis, so replicas share it): spend plus open reservations can never pass a limit.
A request that does not fit gets 429 `budget_exceeded` naming the budget, the period,
the limit and what is spent. `post_response` settles each reservation to the real cost
(`ctx.cost_usd`: 0 for a failed request, the estimate for a stream the client left)
before the client has the last byte (on Redis, the settles of concurrent requests share
one round trip: core/counters/settle.py), and queues the cost for the spend ledger
(ledger.py), written by a background task. At start-up the counters of
the current period are rebuilt from the ledger (`set_if_absent`: a running replica's
live counters win), so a restart forgets nothing.

The tenant's and the key's counters are kept even without a limit (reserving against
"unlimited"), so a budget set later in a period starts from what was really spent.

Counters down: 503 in the caller's shape and nothing forwarded (budgets fail closed).
Headers: `x-interlock-budget-remaining-usd`, the least left (spend and open
reservations counted) of the budgets that have a limit. The soft threshold (alerts.py)
warns once per budget and period, from a background task.

Counter keys: `bg:{period id}:{tenant}[:k:{key}|:f:{feature}|:m:{model}]`.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any, ClassVar

import msgspec

from interlock.core import GatewayError, Plugin, RequestContext, Services, hookimpl
from interlock.core.counters import Adjustment, CounterError, Reservation, ReserveCheck, Settle
from interlock.core.counters.gate import KEY as GATE
from interlock.core.counters.gate import Gate
from interlock.core.counters.settle import Settler

from .alerts import Alerts, make_alert
from .config import BudgetConfig, validate
from .cost import WorstCase
from .ledger import MIGRATIONS, LedgerWriter, spend_in
from .periods import Period, Periods

__all__ = ["Budget", "BudgetConfig"]

UNLIMITED = 1e300  # a reservation that always fits: the counter is kept, nothing refused
_GRACE_S = 86_400.0  # a period's counters outlive it by a day: late settles land


class _Scope(msgspec.Struct, frozen=True):
    scope: str  # "tenant" | "key" | "feature" | "model"
    name: str
    key: str  # counter key
    limit: float | None


class _Held(msgspec.Struct):
    """What `pre_forward` reserved, for `post_response` to settle and record."""

    period: Period
    started: float  # Unix time
    tenant: str
    scopes: list[_Scope]
    reserved: float
    used: list[float]  # each counter after the reservation
    ttl_s: float


class Budget(Plugin):
    name = "budget"
    Config = BudgetConfig
    needs_shared_counters: ClassVar[bool] = True
    migrations = MIGRATIONS

    def __init__(self, config: BudgetConfig, services: Services) -> None:
        super().__init__(config, services)
        validate(config, services.config.source)
        self.cfg = config
        self.counters = services.counters
        self.store = services.store
        self.logger = services.logger
        self.periods = Periods(config.period)
        self.worst = WorstCase(
            services.pricing,
            services.providers,
            config.default_max_tokens,
            config.max_output_tokens,
        )
        self.settler = Settler(
            services.counters, services.spawn, services.logger, name="budget-settle"
        )
        self.ledger = LedgerWriter(services.store, services.spawn, services.logger)
        self.alerts = Alerts(config, services.counters, services.spawn, services.logger)

    # -- start-up: the counters from the ledger ------------------------------------------
    @hookimpl
    async def startup(self, services: Services) -> None:
        now = self.periods.clock()
        period = self.periods.current(now)
        sums: dict[str, float] = defaultdict(float)
        cfg = self.cfg
        total = 0.0
        for tenant, key_id, feature, model, cost in await spend_in(
            self.store, period.start, period.end
        ):
            base = _base(period, tenant)
            total += cost
            sums[base] += cost
            if key_id is not None:
                sums[f"{base}:k:{_part(key_id)}"] += cost
            if feature is not None and feature in cfg.features:
                sums[f"{base}:f:{_part(feature)}"] += cost
            if model is not None and model in cfg.models:
                sums[f"{base}:m:{_part(model)}"] += cost
        ttl = period.end - now + _GRACE_S
        items = list(sums.items())
        seeded = 0
        for at in range(0, len(items), 256):
            done = await asyncio.gather(
                *(self.counters.set_if_absent(k, v, ttl) for k, v in items[at : at + 256])
            )
            seeded += sum(done)
        self.logger.info(
            "budget_rebuilt",
            period_id=period.id,
            counters=len(items),
            seeded=seeded,
            spent_usd=round(total, 6),
        )

    # -- before forwarding: reserve ------------------------------------------------------
    @hookimpl
    async def pre_forward(self, ctx: RequestContext) -> None:
        cfg = self.cfg
        now = self.periods.clock()
        period = self.periods.current(now)
        identity = ctx.identity
        tenant = identity.tenant if identity is not None else cfg.anonymous_tenant
        base = _base(period, tenant)
        if identity is not None:
            limit = identity.tenant_limits.budget_usd
            scopes = [_Scope("tenant", tenant, base, cfg.tenant_usd if limit is None else limit)]
            key_id = identity.key_id
            if key_id is not None:
                limit = identity.key_limits.budget_usd
                limit = cfg.key_usd if limit is None else limit
                scopes.append(_Scope("key", key_id, f"{base}:k:{_part(key_id)}", limit))
        else:
            scopes = [_Scope("tenant", tenant, base, cfg.tenant_usd)]
        if cfg.features and ctx.tags:
            feature = ctx.tags.get("feature")
            if feature is not None and feature in cfg.features:
                key = f"{base}:f:{_part(feature)}"
                scopes.append(_Scope("feature", feature, key, cfg.features[feature]))
        if cfg.models:
            model = ctx.requested_model
            if model in cfg.models:
                scopes.append(_Scope("model", model, f"{base}:m:{_part(model)}", cfg.models[model]))
        cost = self.worst.cost(ctx)
        ttl = period.end - now + _GRACE_S
        checks = [
            ReserveCheck(s.key, cost, UNLIMITED if s.limit is None else s.limit, ttl)
            for s in scopes
        ]
        gate: Gate | None = ctx.state.get(GATE)  # rate_limit's checks, when it deferred them
        try:
            if gate is None:
                result = await self.counters.check(checks)
            else:
                result = await gate.check(self.counters, checks)
        except CounterError as exc:
            self.logger.error("budget_counters_down", request_id=ctx.request_id, error=str(exc))
            raise GatewayError(
                503,
                "budget_unavailable",
                "budgets cannot be checked right now (the counters store is unreachable); "
                "the request was not forwarded",
                headers={"retry-after": "1"},
            ) from None
        reservations: list[Any] = list(result.results)
        remaining: float | None = None
        for s, r in zip(scopes, reservations, strict=True):
            if s.limit is not None:
                left = s.limit - r.used
                remaining = left if remaining is None or left < remaining else remaining
        if remaining is not None:
            ctx.add_header("x-interlock-budget-remaining-usd", f"{max(0.0, remaining):.6f}")
        if not result.allowed:
            raise _refusal(period, tenant, scopes, reservations, cost)
        ctx.state["budget"] = _Held(
            period, time.time(), tenant, scopes, cost, [r.used for r in reservations], ttl
        )

    # -- after the response: settle and record -------------------------------------------
    @hookimpl
    async def post_response(self, ctx: RequestContext) -> None:
        held: _Held | None = ctx.state.get("budget")
        gate: Gate | None = ctx.state.get(GATE)
        theirs = gate.take_settles() if gate is not None else []  # rate_limit's tokens
        if held is None:
            if theirs:
                await self.settler.settle(theirs)
            return
        actual = ctx.cost_usd
        mine: list[Adjustment] = []
        if actual != held.reserved:
            mine = [Settle(s.key, held.reserved, actual, held.ttl_s) for s in held.scopes]
        if theirs or mine:
            values = await self.settler.settle(theirs + mine)
            if mine and values is not None:
                self._check_soft(held, values[len(theirs) :])
        if not mine:
            self._check_soft(held, held.used)
        if actual > 0.0:
            identity = ctx.identity
            usage = ctx.usage
            self.ledger.add(
                (
                    ctx.request_id,
                    held.started,
                    held.period.id,
                    held.tenant,
                    identity.key_id if identity is not None else None,
                    ctx.tags.get("feature") if ctx.tags else None,
                    ctx.requested_model or None,
                    ctx.model,
                    actual,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    1 if usage.estimated else 0,
                    ctx.status,
                )
            )

    def _check_soft(self, held: _Held, values: list[float]) -> None:
        threshold = self.cfg.soft_threshold
        for s, value in zip(held.scopes, values, strict=True):
            if s.limit is not None and s.limit > 0 and value >= threshold * s.limit:
                alert = make_alert(
                    held.tenant, s.scope, s.name, held.period, s.limit, value, threshold
                )
                self.alerts.crossed(s.key, alert, held.period.end)

    @hookimpl
    async def shutdown(self, services: Services) -> None:
        await self.settler.close()
        await self.ledger.close()
        await self.alerts.close()


def _base(period: Period, tenant: str) -> str:
    return f"bg:{period.id}:{_part(tenant)}"


def _part(value: str) -> str:
    """A name as one segment of a counter key: `:` (the separator) and `%` escaped."""
    if ":" in value or "%" in value:
        return value.replace("%", "%25").replace(":", "%3A")
    return value


def _refusal(
    period: Period,
    tenant: str,
    scopes: list[_Scope],
    reservations: list[Reservation],
    cost: float,
) -> GatewayError:
    """429 naming the first budget that did not fit: its period, limit and spend."""
    for s, r in zip(scopes, reservations, strict=True):
        if not r.allowed and s.limit is not None:
            whose = (
                f"the tenant '{tenant}'"
                if s.scope == "tenant"
                else (f"the {s.scope} '{s.name}' of tenant '{tenant}'")
            )
            return GatewayError(
                429,
                "budget_exceeded",
                f"budget exceeded: {whose} has a {period.kind} budget of ${s.limit:.2f} "
                f"for {period.id} (UTC); ${r.used:.4f} is spent or reserved, and this "
                f"request may cost up to ${cost:.4f}",
                code="budget_exceeded",
            )
    # Every budget fitted: another plugin's limit in the same call refused the batch.
    return GatewayError(
        429,
        "rate_limit_exceeded",
        "a limit of this request was reached; it was not forwarded",
        code="rate_limit_exceeded",
    )
