"""What cost_router decides for one request: its settings, and the pure choice of a model.

`choose` maps (the tenant's routes, the requested model, the feature tag, the body) to a
model and a reason, in this order of precedence:

1. a feature route: the request carries `X-Feature: support-bot` (or a `feature` tag)
   and the tenant's or the global `features` table maps it to a model: the operator
   moved that whole feature, whatever model its code asks for;
2. an alias: the requested model is a key of `aliases` (`fast`, `smart`, any name);
3. a tier: the requested model is the router's alias (`auto` by default), or
   `force = true`: the complexity score (score.py) picks the first tier it is below;
4. nothing: the requested model is served as asked (None here).

No I/O, no state: the plugin (and `interlock route --explain`) call it with what they
read from the request. Which provider serves the model is balance.py's business.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import msgspec

from interlock.core import ConfigError

from .score import DEFAULT_VECTOR, FEATURES, WEIGHTS, extract, value

__all__ = [
    "Choice",
    "Routes",
    "Settings",
    "TenantRoutes",
    "Tier",
    "choose",
    "routes_for",
    "tier_of",
    "validate",
]

Strategy = Literal["weighted", "latency", "least_busy"]


class Tier(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    below: float  # scores below this (and at or above the previous tier's) use `model`
    model: str


class TenantRoutes(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Per-tenant overrides: `tiers` replaces the global list; `features` and `aliases`
    add to (and win over) the global tables; `force` replaces the global switch."""

    tiers: list[Tier] | None = None
    features: dict[str, str] = {}
    aliases: dict[str, str] = {}
    force: bool | None = None


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[plugins.cost_router]`."""

    alias: str = "auto"  # the model name that asks the router to choose
    force: bool = False  # true: tiers apply to every chat request, whatever its model
    tiers: list[Tier] = []
    features: dict[str, str] = {}  # feature tag -> model
    aliases: dict[str, str] = {}  # model alias -> model
    tenants: dict[str, TenantRoutes] = {}
    # Several providers listing one model are its deployments, ordered per request by:
    # "weighted" (smooth weighted round robin over `deployment_weights`, default 1 each),
    # "latency" (lowest moving average of observed latency first; untried first), or
    # "least_busy" (fewest requests in flight in this process first).
    strategy: Strategy = "weighted"
    deployment_weights: dict[str, float] = {}  # "provider" or "provider/model" -> weight
    latency_alpha: float = 0.3  # EWMA weight of the newest latency sample
    weights: dict[str, float] = {}  # complexity feature weights overriding score.WEIGHTS


class Routes(msgspec.Struct, frozen=True):
    """The effective tables for one tenant (global merged with its overrides).

    `labels` are the tiers' reasons up to the score (`tier<0.3 score=`, and one more,
    `tier>=B score=`, for a score past the last tier): formatted once here, not per
    request."""

    tiers: tuple[Tier, ...]
    features: dict[str, str]
    aliases: dict[str, str]
    force: bool
    labels: tuple[str, ...] = ()


class Choice(NamedTuple):
    model: str
    reason: str


def validate(settings: Settings) -> dict[str, float]:
    """Check what msgspec cannot (tier order, weight names, ranges); return the
    complexity weights in effect. Raises ConfigError naming the key."""
    where = "[plugins.cost_router]"
    _check_tiers(settings.tiers, f"{where} key `tiers`")
    for tenant, override in settings.tenants.items():
        if override.tiers is not None:
            _check_tiers(override.tiers, f"{where} key `tenants.{tenant}.tiers`")
    if settings.force and not settings.tiers:
        raise ConfigError(f"{where} key `force`: needs `tiers`")
    unknown = sorted(set(settings.weights) - set(FEATURES))
    if unknown:
        raise ConfigError(
            f"{where} key `weights.{unknown[0]}`: unknown feature (known: {', '.join(FEATURES)})"
        )
    if any(w < 0 for w in settings.weights.values()):
        raise ConfigError(f"{where} key `weights`: weights must be >= 0")
    if any(not w > 0 for w in settings.deployment_weights.values()):
        raise ConfigError(f"{where} key `deployment_weights`: weights must be > 0")
    if not 0 < settings.latency_alpha <= 1:
        raise ConfigError(f"{where} key `latency_alpha`: must be in (0, 1]")
    return {**WEIGHTS, **settings.weights}


def _check_tiers(tiers: list[Tier], where: str) -> None:
    previous = float("-inf")
    for tier in tiers:
        if not tier.model:
            raise ConfigError(f"{where}: a tier has an empty model")
        if not tier.below > previous:
            raise ConfigError(f"{where}: `below` must increase from one tier to the next")
        previous = tier.below


def routes_for(settings: Settings, tenant: str | None) -> Routes:
    """The global tables with `tenant`'s overrides applied (computed once per tenant)."""
    override = settings.tenants.get(tenant) if tenant is not None else None
    if override is None:
        tiers = tuple(settings.tiers)
        return Routes(
            tiers,
            dict(settings.features),
            dict(settings.aliases),
            settings.force,
            _labels(tiers),
        )
    tiers = tuple(override.tiers if override.tiers is not None else settings.tiers)
    return Routes(
        tiers,
        {**settings.features, **override.features},
        {**settings.aliases, **override.aliases},
        settings.force if override.force is None else override.force,
        _labels(tiers),
    )


def _labels(tiers: tuple[Tier, ...]) -> tuple[str, ...]:
    """Each tier's reason before its score, then the one for a score past the last."""
    if not tiers:
        return ()
    return (*(f"tier<{t.below:g} score=" for t in tiers), f"tier>={tiers[-1].below:g} score=")


def choose(
    routes: Routes,
    *,
    alias: str,
    requested: str,
    feature: str | None,
    chat_body: bytes | None,
    weights: tuple[float, ...] = DEFAULT_VECTOR,
) -> Choice | None:
    """The model for this request and why, or None to serve the requested model.
    `chat_body` is the raw body of a chat request (None for other endpoints: feature
    routes and tiers apply to chat only)."""
    if chat_body is not None and feature is not None:
        model = routes.features.get(feature)
        if model is not None:
            return Choice(model, f"feature={feature}")
    target = routes.aliases.get(requested)
    if target is not None:
        return Choice(target, f"alias={requested}")
    if chat_body is not None and routes.tiers and (requested == alias or routes.force):
        return _tier(
            routes.tiers, routes.labels or _labels(routes.tiers), value(extract(chat_body), weights)
        )
    return None


def tier_of(tiers: tuple[Tier, ...], value: float) -> tuple[str, str]:
    """(model, reason) of the first tier whose `below` the score is under; a score past
    the last tier (tiers that stop short of 1) goes to the last one."""
    return _tier(tiers, _labels(tiers), value)


def _tier(tiers: tuple[Tier, ...], labels: tuple[str, ...], value: float) -> Choice:
    """`tier_of` with the labels made in advance (`Routes.labels`)."""
    for tier, label in zip(tiers, labels, strict=False):  # labels has one more
        if value < tier.below:
            return Choice(tier.model, f"{label}{value:.2f}")
    return Choice(tiers[-1].model, f"{labels[-1]}{value:.2f}")
