"""rate_limit and budget behind the real tenant_auth: limits come from the tenants and
keys in the store, and the virtual key shows up nowhere (answers, ledger, logs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

from interlock.core.store import open_store
from tests.plugins.budget.test_budget import worst_case
from tests.plugins.policy import Deployment, chat_body, gateways, post, usage_reply

MASTER = "mk-test-master-key-policy-0000"


def config(upstream: str, deployment: Deployment) -> str:
    return f"""
[counters]
url = "{deployment.counters}"

[store]
url = "{deployment.store}"

[[providers]]
name = "up"
kind = "openai"
base_url = "{upstream}/v1"
api_key = "sk-test-upstream-key-0000"
models = ["gpt-4o"]

[plugins.tenant_auth]
master_key = "{MASTER}"

[plugins.rate_limit]

[plugins.budget]
"""


async def _admin(client: httpx.AsyncClient, gw: str, path: str, body: dict[str, Any]) -> Any:
    reply = await client.post(
        f"{gw}{path}", json=body, headers={"authorization": f"Bearer {MASTER}"}
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


async def test_limits_from_the_store_are_enforced_and_the_key_leaks_nowhere(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    body = chat_body(max_tokens=1000)
    one = worst_case(body, 1000)
    async with gateways(config(url, deployment), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:
            await _admin(
                client,
                gws[0].url,
                "/admin/tenants",
                {"name": tenant, "rpm": 3, "monthly_budget_usd": 10.0},
            )
            key = await _admin(
                client, gws[0].url, "/admin/keys", {"tenant": tenant, "budget_usd": 2.5 * one}
            )
            auth = {"authorization": f"Bearer {key['key']}", "content-type": "application/json"}
            other = await _admin(client, gws[0].url, "/admin/keys", {"tenant": tenant})
            free = {"authorization": f"Bearer {other['key']}", "content-type": "application/json"}
            with capture_logs() as logs:
                replies = [await post(client, gws[i % len(gws)], body, auth) for i in range(3)]
                replies += [await post(client, gws[i % len(gws)], body, free) for i in range(2)]
    # The first key's budget fits two worst cases; its third request is refused by it and
    # takes none of the tenant's 3 requests a minute, which the other key then uses up.
    assert [r.status_code for r in replies] == [200, 200, 429, 200, 429]
    assert replies[2].json()["error"]["code"] == "budget_exceeded"
    assert f"the key '{key['id']}' of tenant '{tenant}'" in replies[2].json()["error"]["message"]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in replies] == [
        "2",
        "1",
        "1",
        "0",
        "0",
    ]
    assert replies[4].json()["error"]["code"] == "rate_limit_exceeded"
    assert f"tenant '{tenant}': 3 requests per minute" in replies[4].json()["error"]["message"]
    store = await open_store(deployment.store)
    try:
        rows = await store.fetchall("SELECT * FROM spend_ledger")
    finally:
        await store.close()
    assert [(r[4], r[5]) for r in rows] == [(tenant, key["id"])] * 2 + [(tenant, other["id"])]
    for secret in (key["key"], other["key"]):
        assert all(secret not in repr(row) for row in rows)
        assert all(secret not in r.text and secret not in str(r.headers) for r in replies)
        assert secret not in repr(logs)
