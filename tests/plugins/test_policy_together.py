"""rate_limit and budget together: with rate_limit listed first, one counters call per
request for both before forwarding and one after (a Redis round trip each), all or
nothing across the two."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock.core.counters import Adjustment, Check, CheckResult, open_counters
from tests.plugins.policy import Deployment, chat_body, gateways, post, toml, usage_reply, who


class CountingCounters:
    """The real counters, with every `check` (one round trip on Redis) counted."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.checks: list[int] = []
        self.adjusts: list[int] = []

    async def check(self, checks: Sequence[Check]) -> CheckResult:
        self.checks.append(len(checks))
        result: CheckResult = await self._inner.check(checks)
        return result

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[float]:
        self.adjusts.append(len(adjustments))
        result: list[float] = await self._inner.adjust(adjustments)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[CountingCounters]:
    made: list[CountingCounters] = []

    async def counting(url: str, **kwargs: Any) -> CountingCounters:
        wrapper = CountingCounters(await open_counters(url, **kwargs))
        made.append(wrapper)
        return wrapper

    monkeypatch.setattr("interlock.core.app.open_counters", counting)
    return made


RATE_THEN_BUDGET = "\n[plugins.rate_limit]\n\n[plugins.budget]\n"
BUDGET_THEN_RATE = "\n[plugins.budget]\n\n[plugins.rate_limit]\n"


async def test_one_counters_call_per_request_for_both_plugins_and_one_to_settle(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path, counted: list[CountingCounters]
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply(lambda asked: 10))  # less than reserved
    limits = {"tenant": {"rpm": 100, "tpm": 1_000_000, "budget_usd": 100.0}, "key": {"rpm": 50}}
    async with gateways(
        toml(url, deployment, RATE_THEN_BUDGET), tmp_path, deployment.instances
    ) as gws:
        async with httpx.AsyncClient() as client:
            replies = [
                await post(
                    client, gws[i % len(gws)], chat_body(), who(tenant, key="k", limits=limits)
                )
                for i in range(6)
            ]
    assert [r.status_code for r in replies] == [200] * 6
    # rpm and tpm of the tenant, rpm of the key, the tenant's and the key's budgets: 5
    # limits, one call per request.
    assert sum(len(c.checks) for c in counted) == 6
    assert all(n == 5 for c in counted for n in c.checks)
    # After each response: the tenant's tokens and both budgets, settled in one call.
    assert sum(len(c.adjusts) for c in counted) == 6
    assert all(n == 3 for c in counted for n in c.adjusts)
    for reply in replies:
        assert "x-ratelimit-remaining-requests" in reply.headers
        assert "x-ratelimit-remaining-tokens" in reply.headers
        assert "x-interlock-budget-remaining-usd" in reply.headers
    assert [r.headers["x-ratelimit-remaining-requests"] for r in replies] == [
        "49",
        "48",
        "47",
        "46",
        "45",
        "44",
    ]


@pytest.mark.parametrize(
    "order", [RATE_THEN_BUDGET, BUDGET_THEN_RATE], ids=["rate-first", "budget-first"]
)
async def test_a_budget_refusal_takes_no_rate_limit_unit_and_the_other_way_round(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path, order: str
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    body = chat_body(max_tokens=1000)
    async with gateways(toml(url, deployment, order), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:
            rich = {"tenant": {"rpm": 10, "budget_usd": 100.0}}
            first = await post(client, gws[0], body, who(tenant, limits=rich))
            assert first.status_code == 200
            spent = 100.0 - float(first.headers["x-interlock-budget-remaining-usd"])
            # The same tenant with a budget lower than what it has spent: refused by budget.
            poor = {"tenant": {"rpm": 10, "budget_usd": spent / 2}}
            refused = await post(client, gws[-1], body, who(tenant, limits=poor))
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "budget_exceeded"
            again = await post(client, gws[0], body, who(tenant, limits=rich))
            assert again.status_code == 200
            # The refused request took no unit of the 10 per minute: 10 - 2 remain... 8.
            assert again.headers["x-ratelimit-remaining-requests"] == "8"
            # And a request refused by its rate limit reserves no budget.
            slow = {"tenant": {"rpm": 2, "budget_usd": 100.0}}
            limited = await post(client, gws[-1], body, who(tenant, limits=slow))
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limit_exceeded"
            after = await post(client, gws[0], chat_body(max_tokens=1), who(tenant, limits=rich))
    assert after.status_code == 200
    # Two requests spent, plus this small one's worst case: nothing of the refused ones.
    left = float(after.headers["x-interlock-budget-remaining-usd"])
    assert 100.0 - left == pytest.approx(2 * spent, rel=0.02)
