"""cost_router: send each request to the cheapest model that can serve it, and balance a
model's deployments.

`route` (sync, no I/O) asks decide.py for a model (feature route, alias, complexity
tier, or the requested model) and balance.py for the order of that model's deployments,
and returns them as the decision with its reason (`tier<0.3 score=0.18`). It returns
None when it has nothing to add (a requested model with one deployment), so a router
listed after it still gets its turn. `pre_forward` puts the reason in the
`x-interlock-route-reason` header, `on_attempt` the provider/model tried in
`x-interlock-route` and learns latencies (for the `latency` strategy, the one that
reads them); `post_response` ends the in-flight count.

Per request this costs one msgspec decode of the fields the score reads (only for
requests that ask for the alias or when `force` is on) and a few dict operations; what
depends only on the configuration (a tenant's routes and tier labels, a model's
deployments, a route header) is computed once and kept in dicts of at most 10,000
entries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

from interlock.core import (
    Attempt,
    Candidate,
    GatewayError,
    Plugin,
    Provider,
    RequestContext,
    RoutingDecision,
    Services,
    deployments_of,
    hookimpl,
)

from .balance import Balancer
from .decide import Choice, Routes, Settings, choose, routes_for, validate
from .score import vector

__all__ = ["CostRouter", "header_value"]

ROUTE_HEADER = "x-interlock-route"
REASON_HEADER = "x-interlock-route-reason"
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def header_value(text: str) -> str:
    """Printable ASCII only (no CR/LF: a reason can come from any router), 256 at most."""
    text = text[:256]
    return text if text.isascii() and text.isprintable() else _UNSAFE.sub("?", text)


class CostRouter(Plugin):
    name = "cost_router"
    Config = Settings

    _MAX_CACHED: ClassVar[int] = 10_000

    def __init__(self, config: Settings, services: Services) -> None:
        super().__init__(config, services)
        self.settings = config
        self.weights = vector(validate(config))
        self.providers: Mapping[str, Provider] = services.providers
        self.balancer = Balancer(config.strategy, config.deployment_weights, config.latency_alpha)
        self._global = routes_for(config, None)
        self._routes: dict[str | None, Routes] = {None: self._global}
        self._deployments: dict[str, tuple[Candidate, ...]] = {}
        self._least_busy = config.strategy == "least_busy"
        self._learns_latency = config.strategy == "latency"
        # (provider, model) -> its `x-interlock-route` value; bounded like _deployments
        # (model names come from clients), never invalidated (a pure function of the key).
        self._route_headers: dict[tuple[str, str], str] = {}
        for model in self._configured_models():
            if not self.deployments(model):
                services.logger.warning("cost_router_model_unserved", model=model)

    def _configured_models(self) -> list[str]:
        s = self.settings
        models = [t.model for t in s.tiers] + list(s.features.values()) + list(s.aliases.values())
        for override in s.tenants.values():
            models += [t.model for t in override.tiers or ()]
            models += list(override.features.values()) + list(override.aliases.values())
        return sorted(set(models))

    # -- lookups, cached -------------------------------------------------------------------
    def routes(self, tenant: str | None) -> Routes:
        found = self._routes.get(tenant)
        if found is None:
            if tenant not in self.settings.tenants:
                return self._routes[None]
            found = self._routes[tenant] = routes_for(self.settings, tenant)
        return found

    def deployments(self, model: str) -> tuple[Candidate, ...]:
        found = self._deployments.get(model)
        if found is None:
            found = deployments_of(model, self.providers)
            if len(self._deployments) < self._MAX_CACHED:  # model names come from clients
                self._deployments[model] = found
        return found

    def route_header(self, provider: str, model: str) -> str:
        key = (provider, model)
        found = self._route_headers.get(key)
        if found is None:
            found = header_value(f"{provider}/{model}")
            if len(self._route_headers) < self._MAX_CACHED:
                self._route_headers[key] = found
        return found

    def choose(self, ctx: RequestContext) -> Choice | None:
        identity = ctx.identity
        tags = ctx.tags
        return choose(
            self._global if identity is None else self.routes(identity.tenant),
            alias=self.settings.alias,
            requested=ctx.requested_model,
            feature=tags.get("feature") if tags else None,
            chat_body=ctx.raw if ctx.endpoint == "chat" else None,
            weights=self.weights,
        )

    # -- hooks -----------------------------------------------------------------------------
    @hookimpl
    def route(self, ctx: RequestContext) -> RoutingDecision | None:
        choice = self.choose(ctx)
        model = choice.model if choice is not None else ctx.requested_model
        deployments = self._deployments.get(model) or self.deployments(model)
        if choice is None:
            if len(deployments) < 2:
                return None  # nothing to add: the next router or the default route
            reason = "requested"
        else:
            reason = choice.reason
            if not deployments:
                raise GatewayError(
                    503,
                    "no_candidates",
                    f"no provider serves the model '{model}' chosen by cost_router ({reason})",
                )
        if len(deployments) < 2:
            ordered = list(deployments)  # nothing to balance
        else:
            ordered = self.balancer.order(model, deployments)
            reason = f"{reason} {self.settings.strategy}"
        if self._least_busy:
            self.balancer.acquire(ordered[0])
            ctx.state["cost_router"] = ordered[0]
        return RoutingDecision(ordered, reason)

    @hookimpl
    def pre_forward(self, ctx: RequestContext) -> None:
        if ctx.decision is not None and ctx.decision.reason:
            ctx.add_header(REASON_HEADER, header_value(ctx.decision.reason))

    @hookimpl
    def on_attempt(self, ctx: RequestContext, attempt: Attempt) -> None:
        ctx.add_header(ROUTE_HEADER, self.route_header(attempt.provider, attempt.model))
        if attempt.status == 200:
            if self._learns_latency:  # no other strategy reads them
                self.balancer.observe(attempt.provider, attempt.model, attempt.latency_ms)
        elif self._least_busy:
            held = ctx.state.get("cost_router")
            if held == Candidate(attempt.provider, attempt.model):
                # It failed: it no longer holds a request (the next attempt is elsewhere).
                self.balancer.release(held)
                del ctx.state["cost_router"]

    @hookimpl
    def post_response(self, ctx: RequestContext) -> None:
        if self._least_busy:
            held = ctx.state.pop("cost_router", None)
            if held is not None:
                self.balancer.release(held)
