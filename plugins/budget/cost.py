"""The worst case a request can cost, reserved against its budgets before it leaves.

Prompt tokens are estimated as the core does (four bytes a token over the body sent),
priced at the model's input price (or its cache-write price when higher); output at
`max_completion_tokens` / `max_tokens` when the request sets one, else the model's
output limit from `max_output_tokens`, else `default_max_tokens`. With several
candidates (failover, a router), the most expensive one counts. Prices are looked up
once per (provider, model) and cached, like the core prices an alias as its upstream
model. The estimate can be low only for a prompt denser than four bytes a token; the
settle afterwards charges the real cost either way.
"""

from __future__ import annotations

from collections.abc import Mapping

from interlock.core import Provider, RequestContext
from interlock.core.pricing import Pricing

__all__ = ["WorstCase", "output_cap"]


def output_cap(ctx: RequestContext) -> int | None:
    """`max_completion_tokens` or `max_tokens` as the request sets it; None when absent."""
    return ctx.output_cap()


class WorstCase:
    def __init__(
        self,
        pricing: Pricing,
        providers: Mapping[str, Provider],
        default_max_tokens: int,
        max_output_tokens: dict[str, int],
    ) -> None:
        self.pricing = pricing
        self.providers = providers
        self.default_max_tokens = default_max_tokens
        self.max_output_tokens = max_output_tokens
        # (provider, model) -> USD per token: (input, output, output tokens if unset)
        self._prices: dict[tuple[str, str], tuple[float, float, int]] = {}

    def cost(self, ctx: RequestContext) -> float:
        prompt = max(1, len(ctx.raw) // 4)
        chat = ctx.endpoint == "chat"
        asked = ctx.output_cap() if chat else 0
        decision = ctx.decision
        prices = self._prices
        worst = 0.0
        for candidate in decision.candidates if decision is not None else ():
            provider, model = candidate.provider, candidate.model
            price = prices.get((provider, model))  # the cache first: once per request
            price_in, price_out, limit = price or self._price(provider, model)
            out = asked if asked is not None else limit
            cost = prompt * price_in + (out * price_out if chat else 0.0)
            if cost > worst:
                worst = cost
        return worst

    def _price(self, provider: str, model: str) -> tuple[float, float, int]:
        try:
            return self._prices[(provider, model)]
        except KeyError:
            pass
        price = self.pricing.price(model)
        upstream = model
        if price is None and provider in self.providers:
            upstream = self.providers[provider].upstream_model(model)
            price = self.pricing.price(upstream)
        if price is None:
            found = (0.0, 0.0, 0)
        else:
            write = price.cache_write if price.cache_write is not None else 0.0
            limit = self.max_output_tokens.get(model) or self.max_output_tokens.get(upstream)
            found = (
                max(price.input, write) / 1e6,
                price.output / 1e6,
                limit or self.default_max_tokens,
            )
        if len(self._prices) < 10_000:  # bounded: model names come from clients
            self._prices[(provider, model)] = found
        return found
