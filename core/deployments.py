"""Which configured providers can serve a model: the one rule routers and failover share.

Providers listing the model by name are its deployments, in configuration order (a
router balances across them, failover falls back along them); a `"*"` provider is a last
resort, not a sibling, so it counts only when no provider lists the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .context import Candidate

__all__ = ["deployments_of"]


def deployments_of(model: str, providers: Mapping[str, Any]) -> tuple[Candidate, ...]:
    """Providers listing `model` by name, in configuration order; else the first one
    serving it through `"*"`; else none. Works on providers and on provider configs."""
    listed = tuple(Candidate(name, model) for name, p in providers.items() if model in p.models)
    if listed:
        return listed
    for name, p in providers.items():
        if p.serves(model):
            return (Candidate(name, model),)
    return ()
