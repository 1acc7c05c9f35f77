"""The soft threshold: a warning once per budget and period, and an optional webhook.

When a budget's spend (with open reservations) passes `soft_threshold` of its limit,
`Alerts.crossed` is told; it remembers the budget in process (so a busy tenant costs
one set lookup per request afterwards) and hands the rest to a background task: a
`claim` on the counters makes exactly one replica announce it per period, which logs a
warning and POSTs the webhook, retrying with a doubling pause. Nothing here runs on the
request path, and the webhook body carries names and numbers only (tenant, key id,
feature, model, amounts): never a key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from interlock.core.counters import CounterError, Counters

from .config import BudgetConfig
from .periods import Period

__all__ = ["Alert", "Alerts"]

_encode = msgspec.json.Encoder().encode
_MAX_REMEMBERED = 100_000


class Alert(msgspec.Struct, kw_only=True):
    """The webhook's JSON body."""

    type: str = "budget.soft_threshold"
    tenant: str
    scope: str  # "tenant" | "key" | "feature" | "model"
    name: str  # the tenant, key id, feature or model the budget belongs to
    period: str  # "monthly" | "weekly" | "daily"
    period_id: str  # "2026-11"
    period_ends_at: str  # ISO 8601, UTC
    limit_usd: float
    spent_usd: float  # spent and reserved when the threshold was passed
    threshold: float


def make_alert(
    tenant: str, scope: str, name: str, period: Period, limit: float, spent: float, threshold: float
) -> Alert:
    return Alert(
        tenant=tenant,
        scope=scope,
        name=name,
        period=period.kind,
        period_id=period.id,
        period_ends_at=datetime.fromtimestamp(period.end, UTC).isoformat(),
        limit_usd=limit,
        spent_usd=round(spent, 6),
        threshold=threshold,
    )


class Alerts:
    def __init__(
        self,
        cfg: BudgetConfig,
        counters: Counters,
        spawn: Callable[..., asyncio.Task[Any]],
        logger: Any,
    ) -> None:
        self.cfg = cfg
        self.counters = counters
        self._spawn = spawn
        self._logger = logger
        self._seen: set[str] = set()
        self._client: httpx.AsyncClient | None = None
        self.pending: set[asyncio.Task[Any]] = set()  # announcements under way
        self.sent = 0  # webhooks delivered (tests, metrics)

    def crossed(self, key: str, alert: Alert, period_end: float) -> None:
        """The budget at counter `key` passed its soft threshold (cheap when known)."""
        if key in self._seen:
            return
        if len(self._seen) >= _MAX_REMEMBERED:
            self._seen.clear()  # the claim still stops a second announcement
        self._seen.add(key)
        task = self._spawn(self._announce(key, alert, period_end), name="budget-alert")
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _announce(self, key: str, alert: Alert, period_end: float) -> None:
        ttl = max(60.0, period_end - time.time() + 86_400.0)
        try:
            first = await self.counters.claim("bga:" + key, "1", ttl)
        except CounterError as exc:
            self._seen.discard(key)  # try again on a later request
            self._logger.error("budget_alert_unclaimed", tenant=alert.tenant, error=str(exc))
            return
        if not first:
            return  # another replica (or an earlier run) announced it
        self._logger.warning(
            "budget_soft_threshold",
            tenant=alert.tenant,
            scope=alert.scope,
            name=alert.name,
            period_id=alert.period_id,
            limit_usd=alert.limit_usd,
            spent_usd=alert.spent_usd,
            threshold=alert.threshold,
        )
        if self.cfg.webhook_url is not None:
            await self._post(self.cfg.webhook_url, alert)

    async def _post(self, url: str, alert: Alert) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.cfg.webhook_timeout_s)
        body = _encode(alert)
        pause = self.cfg.webhook_backoff_s
        reason = ""
        for attempt in range(1, self.cfg.webhook_attempts + 1):
            try:
                resp = await self._client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                if 200 <= resp.status_code < 300:
                    self.sent += 1
                    return
                reason = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            if attempt < self.cfg.webhook_attempts:
                await asyncio.sleep(pause)  # a background task: the receiver needs time
                pause *= 2
        self._logger.error(
            "budget_webhook_failed",
            tenant=alert.tenant,
            scope=alert.scope,
            attempts=self.cfg.webhook_attempts,
            reason=reason,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
