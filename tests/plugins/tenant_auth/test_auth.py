"""tenant_auth on the request path, over HTTP against the real app, on both stores:
who the caller is, the one 401 for every bad key, 403 for a model the tenant may not
use, `/v1/models` per tenant, and which key goes upstream."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from interlock.core.store import open_store
from interlock.plugins.tenant_auth.directory import Directory
from interlock.plugins.tenant_auth.models import KeyCreate
from tests.core.test_proxy_openai import COMPLETION
from tests.plugins.tenant_auth.conftest import (
    UPSTREAM_KEY,
    admin,
    chat,
    gateway_toml,
    http,
    messages,
    tenant_and_key,
)
from tests.support import FakeUpstream, Reply, run_gateway

OPENAI_401 = {
    "error": {
        "message": "invalid or missing API key",
        "type": "authentication_error",
        "param": None,
        "code": "authentication_error",
    }
}
ANTHROPIC_401 = {
    "type": "error",
    "error": {"type": "authentication_error", "message": "invalid or missing API key"},
}

# A later plugin that shows what tenant_auth put in ctx.identity, as response headers.
SHOW_IDENTITY = """
import msgspec
from interlock.core import Plugin, hookimpl

class ShowIdentity(Plugin):
    name = "show_identity"

    @hookimpl
    def pre_forward(self, ctx):
        ident = ctx.identity
        ctx.add_header("x-test-identity", msgspec.json.encode(
            {"tenant": ident.tenant, "key_id": ident.key_id, "name": ident.name,
             "models": ident.models, "tenant_limits": ident.tenant_limits,
             "key_limits": ident.key_limits, "providers": sorted(ident.provider_keys)}
        ).decode())
"""


def _show_identity(tmp_path: Path) -> str:
    path = tmp_path / "show_identity.py"
    path.write_text(SHOW_IDENTITY)
    return f'\n[plugins.show_identity]\npath = "{path}"\n'


async def test_bearer_and_x_api_key_identify_the_tenant(
    upstream: tuple[FakeUpstream, str], store_url: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = gateway_toml(store_url, url) + _show_identity(tmp_path)
    async with run_gateway(toml, tmp_path) as gw, http() as client:
        await admin(
            client,
            gw,
            "POST",
            "/admin/tenants",
            {"name": "acme", "monthly_budget_usd": 50, "rpm": 60, "tpm": 10000, "models": []},
        )
        made = await admin(
            client,
            gw,
            "POST",
            "/admin/keys",
            {"tenant": "acme", "name": "ci", "rpm": 10, "budget_usd": 5},
        )
        key, key_id = made.json()["key"], made.json()["id"]
        as_openai = await client.post(
            f"{gw}/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {key}"}
        )
        as_anthropic = await client.post(
            f"{gw}/v1/messages", json=messages(), headers={"x-api-key": key}
        )
    assert as_openai.status_code == 200, as_openai.text
    assert as_anthropic.status_code == 200, as_anthropic.text
    for resp in (as_openai, as_anthropic):
        assert msgspec.json.decode(resp.headers["x-test-identity"]) == {
            "tenant": "acme",
            "key_id": key_id,
            "name": "ci",
            "models": [],
            "tenant_limits": {"rpm": 60, "tpm": 10000, "budget_usd": 50.0},
            "key_limits": {"rpm": 10, "budget_usd": 5.0},
            "providers": [],
        }
    # The provider's key replaced the client's; the virtual key went nowhere upstream.
    assert len(fake.requests) == 2
    for sent in fake.requests:
        assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert "x-api-key" not in sent.headers
        assert key not in repr(sent)


async def _expired_key(store_url: str, tenant: str) -> str:
    """A key whose expiry has passed (made with a clock an hour behind)."""
    store = await open_store(store_url)
    try:
        directory = Directory(store, now=lambda: time.time() - 3600)
        when = datetime.fromtimestamp(time.time() - 1800, UTC)
        return (await directory.create_key(KeyCreate(tenant=tenant, expires_at=when))).key
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [("/v1/chat/completions", chat(), OPENAI_401), ("/v1/messages", messages(), ANTHROPIC_401)],
    ids=["openai", "anthropic"],
)
async def test_every_bad_key_gets_the_same_401(
    gateway: tuple[FakeUpstream, str], store_url: str, path: str, body: object, expected: object
) -> None:
    fake, gw = gateway
    async with http() as client:
        good = await tenant_and_key(client, gw)
        revoked = await tenant_and_key(client, gw)
        assert (
            await admin(client, gw, "DELETE", f"/admin/keys/{revoked['id']}")
        ).status_code == 204
        expired = await _expired_key(store_url, "acme")
        cases = {
            "missing": {},
            "unknown": {"authorization": "Bearer ik-" + "A" * 43},
            "expired": {"authorization": f"Bearer {expired}"},
            "revoked": {"x-api-key": revoked["key"]},
            "garbage": {"authorization": "Bearer not-a-key"},
            "other scheme": {"authorization": f"Basic {good['key']}"},
            "empty": {"x-api-key": ""},
        }
        answers = {
            case: await client.post(f"{gw}{path}", json=body, headers=headers)
            for case, headers in cases.items()
        }
        still_good = await client.post(
            f"{gw}{path}", json=body, headers={"authorization": f"Bearer {good['key']}"}
        )
    assert still_good.status_code == 200
    for case, resp in answers.items():
        assert resp.status_code == 401, case
        assert resp.json() == expected, case
    assert len({resp.content for resp in answers.values()}) == 1
    assert len(fake.requests) == 1  # only the good key's request went upstream


@pytest.mark.parametrize(
    ("path", "body", "error_type"),
    [
        ("/v1/chat/completions", chat("gpt-4o"), lambda b: b["error"]["type"]),
        ("/v1/messages", messages("gpt-4o"), lambda b: b["error"]["type"]),
    ],
    ids=["openai", "anthropic"],
)
async def test_a_model_the_tenant_may_not_use_is_403(
    gateway: tuple[FakeUpstream, str], path: str, body: object, error_type: object
) -> None:
    fake, gw = gateway
    async with http() as client:
        made = await tenant_and_key(client, gw, "narrow", models=["gpt-4o-mini"])
        headers = {"authorization": f"Bearer {made['key']}"}
        refused = await client.post(f"{gw}{path}", json=body, headers=headers)
        allowed_body = dict(body)  # type: ignore[call-overload]
        allowed_body["model"] = "gpt-4o-mini"
        allowed = await client.post(f"{gw}{path}", json=allowed_body, headers=headers)
    assert refused.status_code == 403
    assert error_type(refused.json()) == "permission_error"  # type: ignore[operator]
    assert "gpt-4o" in refused.text
    assert allowed.status_code == 200
    assert [r.json()["model"] for r in fake.requests] == ["gpt-4o-mini"]


async def test_models_lists_only_the_tenants_models(gateway: tuple[FakeUpstream, str]) -> None:
    _, gw = gateway
    async with http() as client:
        narrow = await tenant_and_key(client, gw, "narrow", models=["gpt-4o-mini"])
        wide = await tenant_and_key(client, gw, "wide")
        anonymous = await client.get(f"{gw}/v1/models")
        seen = {
            name: await client.get(
                f"{gw}/v1/models", headers={"authorization": f"Bearer {made['key']}"}
            )
            for name, made in (("narrow", narrow), ("wide", wide))
        }
    assert anonymous.status_code == 401
    assert [m["id"] for m in seen["narrow"].json()["data"]] == ["gpt-4o-mini"]
    assert [m["id"] for m in seen["wide"].json()["data"]] == ["gpt-4o", "gpt-4o-mini"]


async def test_the_tenants_provider_key_replaces_the_providers(
    upstream: tuple[FakeUpstream, str],
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    fake.on("/v1/embeddings", lambda r: Reply.json({"object": "list", "data": []}))
    monkeypatch.setenv("ACME_UP_KEY", "sk-acme-own-key-7777")
    async with run_gateway(gateway_toml(store_url, url), tmp_path) as gw, http() as client:
        own = await tenant_and_key(client, gw, "acme", provider_keys={"up": "env:ACME_UP_KEY"})
        plain = await tenant_and_key(client, gw, "plain")
        unset = await tenant_and_key(client, gw, "unset", provider_keys={"up": "env:NOT_SET_X"})
        for made in (own, plain):
            headers = {"authorization": f"Bearer {made['key']}"}
            assert (
                await client.post(f"{gw}/v1/chat/completions", json=chat(), headers=headers)
            ).status_code == 200
        embed = await client.post(
            f"{gw}/v1/embeddings",
            json={"model": "gpt-4o", "input": "x"},
            headers={"authorization": f"Bearer {own['key']}"},
        )
        refused = await client.post(
            f"{gw}/v1/chat/completions",
            json=chat(),
            headers={"authorization": f"Bearer {unset['key']}"},
        )
    assert embed.status_code == 200
    assert [r.headers["authorization"] for r in fake.requests] == [
        "Bearer sk-acme-own-key-7777",
        f"Bearer {UPSTREAM_KEY}",
        "Bearer sk-acme-own-key-7777",
    ]
    # An override that does not resolve is refused, not silently billed to the gateway.
    assert refused.status_code == 500
    assert refused.json()["error"]["type"] == "configuration_error"
    assert "sk-" not in refused.text


ROUTER = """
from interlock.core import Candidate, Plugin, RoutingDecision, hookimpl

class AutoRouter(Plugin):
    name = "auto_router"

    @hookimpl
    def route(self, ctx):
        if ctx.requested_model == "auto":
            return RoutingDecision([Candidate("up", "gpt-4o"), Candidate("up", "gpt-4o-mini")])
        if ctx.requested_model == "auto-big":
            return RoutingDecision([Candidate("up", "gpt-4o")])
        return None
"""


async def test_a_routers_candidates_outside_the_tenants_models_are_dropped(
    upstream: tuple[FakeUpstream, str], store_url: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    router = tmp_path / "auto_router.py"
    router.write_text(ROUTER)
    toml = gateway_toml(store_url, url) + f'\n[plugins.auto_router]\npath = "{router}"\n'
    async with run_gateway(toml, tmp_path) as gw, http() as client:
        made = await tenant_and_key(
            client, gw, "narrow", models=["auto", "auto-big", "gpt-4o-mini"]
        )
        headers = {"authorization": f"Bearer {made['key']}"}
        served = await client.post(f"{gw}/v1/chat/completions", json=chat("auto"), headers=headers)
        refused = await client.post(
            f"{gw}/v1/chat/completions", json=chat("auto-big"), headers=headers
        )
        # The requested name must be allowed too, whatever a router would make of it.
        strict = await tenant_and_key(client, gw, "strict", models=["gpt-4o-mini"])
        unlisted = await client.post(
            f"{gw}/v1/chat/completions",
            json=chat("auto"),
            headers={"authorization": f"Bearer {strict['key']}"},
        )
    assert unlisted.status_code == 403 and "'auto'" in unlisted.json()["error"]["message"]
    assert served.status_code == 200
    assert [r.json()["model"] for r in fake.requests] == ["gpt-4o-mini"]
    assert refused.status_code == 403 and "gpt-4o" in refused.json()["error"]["message"]
