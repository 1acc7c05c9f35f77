"""The audit log on PostgreSQL (the store for several replicas): durable records from two
gateways writing at once (two chains), read back by the admin route and the export, the
chains verified, and an edit found."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from interlock.core.store import open_store
from interlock.plugins.audit.query import Filters, export, verify
from tests.core.test_proxy_openai import COMPLETION
from tests.core.test_store import pg_url  # noqa: F401  (the fixture: a fresh schema)
from tests.plugins.audit.support import CANARY_KEY, audit_table, policy_plugin, providers
from tests.support import Reply, run_gateway

pytestmark = pytest.mark.services
MASTER = "mk-pg-test-1a2b3c"


async def test_two_gateways_on_postgresql(
    upstream,
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERLOCK_MASTER_KEY", MASTER)
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = (
        f'[store]\nurl = "{pg_url}"\n'
        + providers(url)
        + policy_plugin(tmp_path)
        + audit_table("batch_linger_ms = 5")
    )
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    claude = {**chat, "max_tokens": 10}
    auth = {"authorization": f"Bearer {CANARY_KEY}"}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    reader = await open_store(pg_url)
    try:
        async with (
            run_gateway(toml, tmp_path / "a") as a,
            run_gateway(toml, tmp_path / "b") as b,
            httpx.AsyncClient() as client,
        ):
            calls = [
                client.post(gw + path, json=body, headers=headers)
                for gw in (a, b)
                for path, body in (("/v1/chat/completions", chat), ("/v1/messages", claude))
                for headers in (auth, {})
                for _ in range(5)
            ]
            answers = await asyncio.gather(*calls)
            # Durable: every answered request is already in the database.
            ids = [r.headers["x-request-id"] for r in answers]
            rows = await reader.fetchall("SELECT request_id, status FROM audit_log")
            assert sorted(rid for rid, _ in rows) == sorted(ids)
            assert sorted(s for _, s in rows) == sorted(r.status_code for r in answers)
            resp = await client.get(
                f"{a}/admin/audit?tenant=acme&limit=1000",
                headers={"authorization": f"Bearer {MASTER}"},
            )
            assert resp.status_code == 200
            assert len(resp.json()["data"]) == 20
        result = await verify(reader)
        assert result.broken is None and (result.records, result.chains) == (40, 2)
        exported = [row async for row in export(reader, Filters(tenant="acme"), batch=7)]
        assert len(exported) == 20 and len({(r[0], r[1]) for r in exported}) == 20
        await reader.execute("UPDATE audit_log SET status = 299 WHERE seq = 3")
        broken = (await verify(reader)).broken
        assert broken is not None and broken.seq == 3 and "changed" in broken.reason
    finally:
        await reader.close()
