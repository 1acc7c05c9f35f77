"""No key is ever written where it could leak: a virtual key (whole, or its secret part
after the display prefix), the master key and a tenant's provider key never appear in
the gateway's logs (at debug level), in any error body, or in the store, on both stores.
The SQLite file is searched byte for byte (with its WAL); PostgreSQL's tables as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.core.test_proxy_openai import COMPLETION
from tests.plugins.tenant_auth.conftest import (
    MASTER,
    PG,
    admin,
    chat,
    gateway_toml,
    http,
    messages,
    tenant_and_key,
)
from tests.support import FakeUpstream, Recorded, Reply, run_gateway

TENANT_PROVIDER_KEY = "sk-tenant-own-provider-key-31337"


def _upstream(rec: Recorded) -> Reply:
    body = rec.json()
    if body["messages"][0]["content"] == "echo":  # a provider whose error quotes our key
        message = f"bad request from {rec.headers.get('authorization')}"
        return Reply.json({"error": {"message": message, "type": "invalid_request_error"}}, 400)
    return Reply.json(COMPLETION)


async def _store_text(store_url: str, tmp_path: Path) -> bytes:
    if store_url.startswith("sqlite"):  # the gateway has stopped: nothing else touches them
        files = sorted(tmp_path.glob("interlock.db*"))  # noqa: ASYNC240
        return b"".join(p.read_bytes() for p in files)
    schema = store_url.split("schema=")[1]
    conn = await asyncpg.connect(PG)
    try:
        rows = []
        for table in ("tenants", "virtual_keys", "interlock_migrations"):
            rows += await conn.fetch(f"SELECT t::text AS row FROM {schema}.{table} t")
    finally:
        await conn.close()
    return "\n".join(r["row"] for r in rows).encode()


async def test_no_key_is_logged_returned_or_stored(
    upstream: tuple[FakeUpstream, str],
    store_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", _upstream)
    monkeypatch.setenv("TENANT_UP_KEY", TENANT_PROVIDER_KEY)
    toml = gateway_toml(store_url, url) + '\n[logging]\nlevel = "debug"\n'
    bodies: list[httpx.Response] = []
    async with run_gateway(toml, tmp_path) as gw, http() as client:
        made = await tenant_and_key(
            client, gw, "acme", models=["gpt-4o"], provider_keys={"up": "env:TENANT_UP_KEY"}
        )
        key = made["key"]
        auth = {"authorization": f"Bearer {key}"}

        async def post(path: str, body: Any, headers: dict[str, str]) -> None:
            bodies.append(await client.post(f"{gw}{path}", json=body, headers=headers))

        await post("/v1/chat/completions", chat(), auth)
        await post("/v1/messages", messages(), {"x-api-key": key})
        await post("/v1/chat/completions", chat("gpt-4o-mini"), auth)  # 403
        await post("/v1/messages", messages("gpt-4o-mini"), {"x-api-key": key})  # 403
        await post(
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "echo"}]},
            auth,
        )
        await post("/v1/chat/completions", {"model": "gpt-4o"}, auth)  # 400
        await post("/v1/chat/completions", chat(), {"authorization": f"Bearer {key}x"})
        await post(
            "/admin/tenants", {"name": f"{key}!", "rpm": key}, {"authorization": f"Bearer {MASTER}"}
        )
        await post("/admin/tenants", {"name": "x"}, {"authorization": f"Bearer {key}"})
        await post("/admin/tenants", {"name": "x"}, {"authorization": f"Bearer {MASTER[:-1]}"})
        listing = await admin(client, gw, "GET", "/admin/keys")
        revoked = await admin(client, gw, "DELETE", f"/admin/keys/{made['id']}")
        assert revoked.status_code == 204
        await post("/v1/chat/completions", chat(), auth)  # revoked (TTL: maybe cached still)
    logs = capsys.readouterr()
    statuses = [r.status_code for r in bodies]
    assert statuses[:4] == [200, 200, 403, 403] and statuses[4] == 400 and statuses[5] == 400
    assert statuses[6:10] == [401, 400, 401, 401]
    assert fake.requests[0].headers["authorization"] == f"Bearer {TENANT_PROVIDER_KEY}"
    stored = await _store_text(store_url, tmp_path)
    assert made["id"].encode() in stored and made["prefix"].encode() in stored  # it is the store
    secret_part = key[len(made["prefix"]) :]
    for secret in (key, secret_part, MASTER, TENANT_PROVIDER_KEY):
        assert secret not in logs.out and secret not in logs.err, secret
        for resp in [*bodies, listing]:
            assert secret not in resp.text, (secret, resp.request.url)
        assert secret.encode() not in stored, secret
    assert "tenant_provider_key_unset" not in logs.out
    assert '"tenant":"acme"' in logs.out  # the request lines were captured
