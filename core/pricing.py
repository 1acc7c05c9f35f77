"""What a request cost: token usage times the model's price, from prices.toml.

Prices load once at start-up. A lookup resolves dated and vendor-prefixed names
(`gpt-4o-2024-08-06`, `openai/gpt-4o`) to the longest listed prefix and caches the
answer, so the per-request cost is one dict lookup and a few multiplications.
"""

from __future__ import annotations

import tomllib
from importlib import resources

import msgspec

from .config import PriceOverride
from .context import Usage

__all__ = ["Price", "Pricing"]


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


class _PriceFile(msgspec.Struct, forbid_unknown_fields=True):
    models: dict[str, Price]


class Pricing:
    def __init__(self, overrides: dict[str, PriceOverride] | None = None) -> None:
        text = resources.files(__package__).joinpath("prices.toml").read_text(encoding="utf-8")
        table = msgspec.convert(tomllib.loads(text), _PriceFile).models
        for model, o in (overrides or {}).items():
            table[model] = Price(o.input, o.output, o.cached_input, o.cache_write)
        self._table = table
        self._resolved: dict[str, Price | None] = {}

    def models(self) -> list[str]:
        """Every model with a price (prices.toml and [pricing] overrides)."""
        return list(self._table)

    def price(self, model: str) -> Price | None:
        try:
            return self._resolved[model]
        except KeyError:
            pass
        found = self._lookup(model)
        if len(self._resolved) < 10_000:  # bounded: model names come from clients
            self._resolved[model] = found
        return found

    def _lookup(self, model: str) -> Price | None:
        name = model.rsplit("/", 1)[-1]
        if name in self._table:
            return self._table[name]
        best = max((m for m in self._table if name.startswith(m + "-")), key=len, default=None)
        return self._table[best] if best else None

    def cost(self, model: str | None, usage: Usage) -> float:
        """USD for `usage` on `model`; 0.0 when the model has no price."""
        price = self.price(model) if model else None
        if price is None:
            return 0.0
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        fresh = usage.prompt_tokens - cached - written
        cached_price = price.input if price.cached_input is None else price.cached_input
        write_price = price.input if price.cache_write is None else price.cache_write
        micro = (
            fresh * price.input
            + cached * cached_price
            + written * write_price
            + usage.completion_tokens * price.output
        )
        return micro / 1_000_000
