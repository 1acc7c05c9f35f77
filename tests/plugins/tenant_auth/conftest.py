"""Fixtures for tenant_auth: both stores, a gateway with the plugin on in front of a fake
upstream, and small helpers for the admin API.

Each PostgreSQL test gets a schema of its own (`?schema=`), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.core.test_proxy_openai import COMPLETION
from tests.support import GUARD, FakeUpstream, Reply, run_gateway

PG = "postgresql://postgres@127.0.0.1:5432/test"
MASTER = "mk-test-master-key-5f1e8c0a9b7d4e21"
UPSTREAM_KEY = "sk-test-upstream-key-0000"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(PG, timeout=GUARD)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG}: {exc}")
    schema = f"ta_{uuid.uuid4().hex[:16]}"
    await admin.execute(f"CREATE SCHEMA {schema}")  # our own generated name
    try:
        yield f"{PG}?schema={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/interlock.db"
    return str(request.getfixturevalue("pg_url"))


def gateway_toml(
    store_url: str, upstream: str, plugin: str = "", *, master: str | None = MASTER
) -> str:
    """One OpenAI-format provider `up` at `upstream`, tenant_auth first."""
    master_line = f'master_key = "{master}"' if master is not None else 'master_key = ""'
    return f"""
[store]
url = "{store_url}"

[[providers]]
name = "up"
kind = "openai"
base_url = "{upstream}/v1"
api_key = "{UPSTREAM_KEY}"
models = ["gpt-4o", "gpt-4o-mini"]

[plugins.tenant_auth]
{master_line}
{plugin}
"""


@pytest.fixture
async def gateway(
    upstream: tuple[FakeUpstream, str], store_url: str, tmp_path: Path
) -> AsyncIterator[tuple[FakeUpstream, str]]:
    """A gateway with tenant_auth on the parametrised store; yields (fake upstream, url)."""
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    async with run_gateway(gateway_toml(store_url, url), tmp_path) as gw:
        yield fake, gw


def admin_headers(key: str = MASTER) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def admin(
    client: httpx.AsyncClient, gw: str, method: str, path: str, body: Any = None, **kw: Any
) -> httpx.Response:
    return await client.request(method, f"{gw}{path}", json=body, headers=admin_headers(), **kw)


async def tenant_and_key(
    client: httpx.AsyncClient, gw: str, tenant: str = "acme", **tenant_fields: Any
) -> dict[str, Any]:
    """A tenant (created if new) and a fresh key for it: the 201 body of POST /admin/keys."""
    made = await admin(client, gw, "POST", "/admin/tenants", {"name": tenant, **tenant_fields})
    assert made.status_code in (201, 409), made.text
    created = await admin(client, gw, "POST", "/admin/keys", {"tenant": tenant})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def chat(model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def messages(model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


@contextlib.asynccontextmanager
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=GUARD) as client:
        yield client
