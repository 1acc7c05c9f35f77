"""`[plugins.budget]`: budgets in USD per period, and how the worst case is estimated."""

from __future__ import annotations

import msgspec

from interlock.core import ConfigError

from .periods import PeriodKind

__all__ = ["BudgetConfig", "validate"]


class BudgetConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Calendar month, ISO week or day, in UTC.
    period: PeriodKind = "monthly"
    # Defaults for callers whose identity sets no budget (Identity.tenant_limits /
    # key_limits `budget_usd`, from the auth plugin, take precedence). None: no limit.
    tenant_usd: float | None = None
    key_usd: float | None = None
    # Per tenant and feature tag (X-Feature / X-Interlock-Tags feature=...), and per
    # tenant and requested model alias: { "support-bot" = 200.0 }.
    features: dict[str, float] = {}
    models: dict[str, float] = {}
    # The worst case reserved for a request without max_tokens: the model's output
    # limit from `max_output_tokens`, else `default_max_tokens`.
    default_max_tokens: int = 4096
    max_output_tokens: dict[str, int] = {}
    # A warning (log line, and the webhook if set) once per period when spend and open
    # reservations pass this share of a budget.
    soft_threshold: float = 0.8
    webhook_url: str | None = None
    webhook_attempts: int = 5
    webhook_backoff_s: float = 1.0  # doubled after each failed attempt
    webhook_timeout_s: float = 5.0
    # The tenant a request without an identity (no auth plugin) is charged to.
    anonymous_tenant: str = "anonymous"


def validate(cfg: BudgetConfig, source: str) -> None:
    where = f"{source}: [plugins.budget]"
    amounts = [("tenant_usd", cfg.tenant_usd), ("key_usd", cfg.key_usd)]
    amounts += [(f"features.{k}", v) for k, v in cfg.features.items()]
    amounts += [(f"models.{k}", v) for k, v in cfg.models.items()]
    for name, value in amounts:
        if value is not None and not value >= 0:
            raise ConfigError(f"{where} key `{name}`: must be a number of USD >= 0")
    if cfg.default_max_tokens < 1:
        raise ConfigError(f"{where} key `default_max_tokens`: must be at least 1")
    for model, tokens in cfg.max_output_tokens.items():
        if tokens < 1:
            raise ConfigError(f"{where} key `max_output_tokens.{model}`: must be at least 1")
    if not 0 < cfg.soft_threshold <= 1:
        raise ConfigError(f"{where} key `soft_threshold`: must be in (0, 1]")
    if cfg.webhook_url is not None and not cfg.webhook_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where} key `webhook_url`: must be an http:// or https:// URL")
    if cfg.webhook_attempts < 1:
        raise ConfigError(f"{where} key `webhook_attempts`: must be at least 1")
