"""`interlock route --explain '<json>'`: what cost_router would decide, offline.

Prints each feature's measured value, signal, weight and contribution, the score, the
tier and the decision (model, reason, the deployments in configuration order), using
`[plugins.cost_router]` of the given plugins.toml (even when `enabled = false`, so
tiers can be tuned before they go live). Nothing is sent anywhere and no provider key
is needed: deployments are read from the `[[providers]]` tables as written. The body
may be in OpenAI's shape or Anthropic's.
"""

from __future__ import annotations

from typing import Any

import msgspec

from interlock.core import ConfigError, deployments_of

from .decide import Settings, choose, routes_for, validate
from .score import FEATURES, Features, extract, score, vector

__all__ = ["explain", "explain_command"]


def explain_command(config: Any, body: str, *, tenant: str | None, feature: str | None) -> str:
    """The report for `body` (JSON text) under `config` (an interlock Config)."""
    entry = next((e for e in config.plugins if e.name == "cost_router"), None)
    table = dict(entry.settings) if entry is not None else {}
    try:
        settings = msgspec.convert(table, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{config.source}: [plugins.cost_router]: {exc}") from None
    raw = body.encode()
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"route --explain: the request is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError("route --explain: the request must be a JSON object")
    providers = {p.name: p for p in config.providers}
    lines = explain(settings, raw, providers, tenant=tenant, feature=feature)
    if entry is None:
        lines.insert(0, f"note: {config.source} has no [plugins.cost_router]: defaults used")
    elif not entry.enabled:
        lines.insert(0, "note: [plugins.cost_router] is not enabled: nothing routes this way yet")
    return "\n".join(lines)


def explain(
    settings: Settings,
    raw: bytes,
    providers: dict[str, Any],
    *,
    tenant: str | None = None,
    feature: str | None = None,
) -> list[str]:
    weights = validate(settings)
    doc = msgspec.json.decode(raw)
    requested = doc.get("model", "") if isinstance(doc, dict) else ""
    features = extract(raw)
    scored = score(features, weights)
    lines = [
        f"{'feature':<16}{'value':<34}{'signal':>7}{'weight':>8}{'contribution':>14}",
    ]
    for name in FEATURES:
        lines.append(
            f"{name:<16}{_value(name, features):<34}{scored.signals[name]:>7.2f}"
            f"{weights[name]:>8.2f}{scored.contributions[name]:>14.3f}"
        )
    total = sum(scored.contributions.values())
    capped = " (capped at 1)" if total > 1 else ""
    lines.append(f"{'score':<16}{scored.value:.3f}{capped}")
    choice = choose(
        routes_for(settings, tenant),
        alias=settings.alias,
        requested=requested if isinstance(requested, str) else "",
        feature=feature,
        chat_body=raw,
        weights=vector(weights),
    )
    if choice is None:
        model, reason = requested, "requested (no tier, feature route or alias applies)"
    else:
        model, reason = choice.model, choice.reason
    lines.append(f"{'decision':<16}{model} ({reason})")
    deployments = deployments_of(model, providers) if isinstance(model, str) else ()
    shown = ", ".join(f"{c.provider}/{c.model}" for c in deployments) or "none: no provider"
    lines.append(f"{'deployments':<16}{shown} (strategy: {settings.strategy})")
    if features.weak_cues:
        lines.append("(a cue marked ? is a weak one: it counts a quarter)")
    return lines


def _value(name: str, f: Features) -> str:
    if name == "reasoning":
        cues = [*f.strong_cues, *(f"{c}?" for c in f.weak_cues)]
        effort = [f"effort={f.reasoning_effort}"] if f.reasoning_effort else []
        text = ", ".join(effort + cues) or "no cues"
        return text if len(text) <= 32 else text[:31] + "…"
    if name == "code":
        if f.code_blocks:
            return f"{f.code_blocks} block(s)"
        return "mentions code" if f.code_hint else "none"
    if name == "prompt_tokens":
        return f"~{f.prompt_tokens} tokens"
    if name == "tools":
        return f"{f.tools} tool(s)"
    if name == "max_tokens":
        return str(f.max_tokens) if f.max_tokens else "not set"
    if name == "turns":
        return str(f.turns)
    return f.response_format or "none"
