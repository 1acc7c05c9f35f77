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
import math
import time
from collections import defaultdict
from typing import Any, ClassVar

import msgspec

from interlock.core import GatewayError, Plugin, RequestContext, Services, hookimpl
from interlock.core.counters import CounterError, Reservation, ReserveCheck, Settle
from interlock.core.counters.gate import KEY as GATE
from interlock.core.counters.gate import Gate
from interlock.core.counters.memory import in_process
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


class _Plan(msgspec.Struct, frozen=True):
    """The budgets of one kind of request in one period (one caller's limits, feature
    and model), built once (`Budget._plan`) instead of on every request."""

    tenant: str
    scopes: tuple[_Scope, ...]
    reserve: tuple[tuple[str, float], ...]  # per scope: (counter key, limit to reserve against)
    limited: tuple[tuple[int, float], ...]  # (position, limit) of each scope with a limit
    # (position, limit, soft_threshold * limit) of each scope with a limit above 0
    soft: tuple[tuple[int, float, float], ...]


class _Held(msgspec.Struct):
    """What `pre_forward` reserved, for `post_response` to settle and record."""

    period: Period
    started: float  # Unix time
    plan: _Plan
    reserved: float
    reservations: tuple[Reservation, ...]  # each counter after the reservation (`used`)
    ttl_s: float


# tenant, key id, the tenant's and the key's budget from the identity, feature, model
_PlanKey = tuple[str, str | None, float | None, float | None, str | None, str | None]
_MAX_PLANS = 10_000  # callers (tenant, key) x configured features and models; then cleared


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
        self.memory = in_process(services.counters)  # plain calls, no coroutine
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
        # The current period's plans by everything they derive from (the config is
        # fixed), so a changed identity's budgets make a new entry; emptied when the
        # period changes (its id is in every key) and past _MAX_PLANS.
        self._plans: dict[_PlanKey, _Plan] = {}
        self._plans_period: Period | None = None

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
        feature = ctx.tags.get("feature") if cfg.features and ctx.tags else None
        if feature is not None and feature not in cfg.features:
            feature = None
        model = ctx.requested_model if cfg.models and ctx.requested_model in cfg.models else None
        if identity is None:
            key: _PlanKey = (cfg.anonymous_tenant, None, None, None, feature, model)
        else:
            key = (
                identity.tenant,
                identity.key_id,
                identity.tenant_limits.budget_usd,
                identity.key_limits.budget_usd,
                feature,
                model,
            )
        if period is not self._plans_period:
            self._plans.clear()
            self._plans_period = period
        try:
            plan = self._plans[key]
        except KeyError:
            plan = self._plan(period, key)
        cost = self.worst.cost(ctx)
        ttl = period.end - now + _GRACE_S
        checks = [ReserveCheck(k, cost, limit, ttl) for k, limit in plan.reserve]
        gate: Gate | None = ctx.state.get(GATE)  # rate_limit's checks, when it deferred them
        try:
            if self.memory is not None:
                result = (
                    self.memory.check_now(checks)
                    if gate is None
                    else gate.check_now(self.memory, checks)
                )
            elif gate is None:
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
        reservations: tuple[Any, ...] = result.results
        if plan.limited:
            remaining = math.inf
            for i, limit in plan.limited:
                left = limit - reservations[i].used
                if left < remaining:
                    remaining = left
            ctx.add_header("x-interlock-budget-remaining-usd", f"{max(0.0, remaining):.6f}")
        if not result.allowed:
            raise _refusal(period, plan.tenant, plan.scopes, reservations, cost)
        ctx.state["budget"] = _Held(period, time.time(), plan, cost, reservations, ttl)

    def _plan(self, period: Period, key: _PlanKey) -> _Plan:
        """The plan of `key` in `period` (see `_Plan`), remembered."""
        cfg = self.cfg
        tenant, key_id, tenant_usd, key_usd, feature, model = key
        base = _base(period, tenant)
        scopes = [
            _Scope("tenant", tenant, base, cfg.tenant_usd if tenant_usd is None else tenant_usd)
        ]
        if key_id is not None:
            limit = cfg.key_usd if key_usd is None else key_usd
            scopes.append(_Scope("key", key_id, f"{base}:k:{_part(key_id)}", limit))
        if feature is not None:
            scopes.append(
                _Scope("feature", feature, f"{base}:f:{_part(feature)}", cfg.features[feature])
            )
        if model is not None:
            scopes.append(_Scope("model", model, f"{base}:m:{_part(model)}", cfg.models[model]))
        threshold = cfg.soft_threshold
        plan = _Plan(
            tenant=tenant,
            scopes=tuple(scopes),
            reserve=tuple((s.key, UNLIMITED if s.limit is None else s.limit) for s in scopes),
            limited=tuple((i, s.limit) for i, s in enumerate(scopes) if s.limit is not None),
            soft=tuple(
                (i, s.limit, threshold * s.limit)
                for i, s in enumerate(scopes)
                if s.limit is not None and s.limit > 0
            ),
        )
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    # -- after the response: settle and record -------------------------------------------
    @hookimpl
    async def post_response(self, ctx: RequestContext) -> None:
        held: _Held | None = ctx.state.get("budget")
        gate: Gate | None = ctx.state.get(GATE)
        batch = gate.take_settles() if gate is not None else []  # rate_limit's tokens first
        theirs = len(batch)
        actual = ctx.cost_usd
        mine = held is not None and actual != held.reserved
        if held is not None and mine:
            reserved, ttl = held.reserved, held.ttl_s
            batch += [Settle(key, reserved, actual, ttl) for key, _ in held.plan.reserve]
        values: list[float] | None = None
        if batch:
            if self.settler.memory is not None:
                values = self.settler.settle_now(batch)
            else:
                values = await self.settler.settle(batch)
        if held is None:
            return
        if not mine:
            self._check_soft(held, [r.used for r in held.reservations])
        elif values is not None:
            self._check_soft(held, values[theirs:])
        if actual > 0.0:
            identity = ctx.identity
            usage = ctx.usage
            self.ledger.add(
                (
                    ctx.request_id,
                    held.started,
                    held.period.id,
                    held.plan.tenant,
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
        plan = held.plan
        for i, limit, soft in plan.soft:
            value = values[i]
            if value >= soft:
                s = plan.scopes[i]
                alert = make_alert(
                    plan.tenant, s.scope, s.name, held.period, limit, value, self.cfg.soft_threshold
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
    scopes: tuple[_Scope, ...],
    reservations: tuple[Reservation, ...],
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
