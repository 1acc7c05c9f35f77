"""`GET /admin/audit`: closed without a master key, the key checked, filters by tenant,
time and request id, newest first, a limit and `has_more`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.core.test_proxy_openai import COMPLETION
from tests.plugins.audit.support import CANARY_KEY, audit_table, policy_plugin, providers
from tests.support import Reply, run_gateway

MASTER = "mk-test-0b9c8d7e6f"


def toml(url: str, tmp_path: Path) -> str:
    return providers(url) + policy_plugin(tmp_path) + audit_table()


async def fill(gw: str, client: httpx.AsyncClient) -> None:
    """Five requests of tenant acme, two refused ones (no tenant)."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    for i in range(5):
        headers = {"authorization": f"Bearer {CANARY_KEY}", "x-request-id": f"acme-{i}"}
        assert (
            await client.post(gw + "/v1/chat/completions", json=body, headers=headers)
        ).status_code == 200
    for i in range(2):
        headers = {"x-request-id": f"anon-{i}"}
        assert (
            await client.post(gw + "/v1/chat/completions", json=body, headers=headers)
        ).status_code == 401


async def test_no_master_key_means_closed(
    upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTERLOCK_MASTER_KEY", raising=False)
    _, url = upstream
    async with run_gateway(toml(url, tmp_path), tmp_path) as gw, httpx.AsyncClient() as client:
        for headers in ({}, {"x-api-key": ""}, {"authorization": "Bearer anything"}):
            resp = await client.get(gw + "/admin/audit", headers=headers)
            assert resp.status_code == 403
            assert resp.json()["error"]["type"] == "permission_error"


async def test_the_master_key_is_required(
    upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOCK_MASTER_KEY", MASTER)
    _, url = upstream
    async with run_gateway(toml(url, tmp_path), tmp_path) as gw, httpx.AsyncClient() as client:
        for headers in ({}, {"authorization": f"Bearer {MASTER}x"}, {"x-api-key": MASTER[:-1]}):
            resp = await client.get(gw + "/admin/audit", headers=headers)
            assert resp.status_code == 401
            assert MASTER not in resp.text
        assert (
            await client.get(gw + "/admin/audit", headers={"x-api-key": MASTER})
        ).status_code == 200


async def test_filters_order_and_limit(
    upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOCK_MASTER_KEY", MASTER)
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    auth = {"authorization": f"Bearer {MASTER}"}
    async with run_gateway(toml(url, tmp_path), tmp_path) as gw, httpx.AsyncClient() as client:
        await fill(gw, client)
        with sqlite3.connect(tmp_path / "interlock.db") as conn:  # spread them over days
            for i in range(5):
                conn.execute(
                    "UPDATE audit_log SET ts = ? WHERE request_id = ?",
                    (f"2026-03-0{i + 1}T12:00:00.000000Z", f"acme-{i}"),
                )

        async def ids(query: str) -> tuple[list[str], bool]:
            resp = await client.get(f"{gw}/admin/audit?{query}", headers=auth)
            assert resp.status_code == 200, resp.text
            doc = resp.json()
            return [r["request_id"] for r in doc["data"]], doc["has_more"]

        everything, more = await ids("")
        assert len(everything) == 7 and not more
        assert await ids("tenant=acme") == (
            ["acme-4", "acme-3", "acme-2", "acme-1", "acme-0"],
            False,
        )
        assert await ids("tenant=acme&limit=2") == (["acme-4", "acme-3"], True)
        assert await ids("tenant=acme&since=2026-03-02&until=2026-03-04") == (
            ["acme-2", "acme-1"],
            False,
        )
        assert await ids("since=2026-03-03T12:00:00Z&until=2026-03-04T00:00:00%2B00:00") == (
            ["acme-2"],
            False,
        )
        assert await ids("request_id=anon-1") == (["anon-1"], False)
        (record,) = (await client.get(f"{gw}/admin/audit?request_id=acme-0", headers=auth)).json()[
            "data"
        ]
        assert record["tenant"] == "acme" and record["attempts"][0]["provider"] == "up"
        for bad in ("limit=0", "limit=1001", "limit=x", "since=yesterday"):
            resp = await client.get(f"{gw}/admin/audit?{bad}", headers=auth)
            assert resp.status_code == 400, bad
