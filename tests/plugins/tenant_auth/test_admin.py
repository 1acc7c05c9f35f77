"""The admin API over HTTP on both stores: the master key and nothing else opens it,
bodies are validated with the field named, lists are paginated, names and ids are data
(never SQL), and /admin/openapi.json is valid OpenAPI 3.1 that the answers conform to."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import msgspec
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tests.plugins.tenant_auth.conftest import (
    MASTER,
    admin,
    admin_headers,
    chat,
    gateway_toml,
    http,
    tenant_and_key,
)
from tests.support import FakeUpstream, run_gateway

ROUTES = [
    ("GET", "/admin/openapi.json"),
    ("POST", "/admin/tenants"),
    ("GET", "/admin/tenants"),
    ("GET", "/admin/tenants/acme"),
    ("PATCH", "/admin/tenants/acme"),
    ("DELETE", "/admin/tenants/acme"),
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys"),
    ("DELETE", "/admin/keys/key_0000000000000000"),
]
INJECTIONS = [
    "x'); DROP TABLE tenants; --",
    "' OR '1'='1",
    "acme' --",
    "1; DELETE FROM virtual_keys",
    'a"; DROP TABLE virtual_keys; --',
]


def _error(resp: Any) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def test_only_the_master_key_opens_the_admin_api(gateway: tuple[FakeUpstream, str]) -> None:
    _, gw = gateway
    async with http() as client:
        tenant_key = (await tenant_and_key(client, gw))["key"]
        for method, path in ROUTES:
            for headers in (
                {},
                {"authorization": "Bearer wrong-master-key"},
                {"authorization": f"Bearer {tenant_key}"},
                {"x-api-key": MASTER},  # the right key in the wrong place
                {"authorization": f"Bearer {MASTER}x"},
                {"authorization": MASTER},
            ):
                resp = await client.request(method, f"{gw}{path}", headers=headers, json={})
                assert resp.status_code == 401, (method, path, headers)
                error = _error(resp)
                assert error["type"] == "authentication_error"
                assert resp.headers["www-authenticate"] == "Bearer"
                assert MASTER not in resp.text and tenant_key not in resp.text
        listed = await client.get(f"{gw}/admin/tenants", headers=admin_headers())
    assert listed.status_code == 200 and [t["name"] for t in listed.json()["data"]] == ["acme"]


async def test_with_no_master_key_every_admin_route_refuses(
    upstream: tuple[FakeUpstream, str], store_url: str, tmp_path: Path
) -> None:
    _, url = upstream
    toml = gateway_toml(store_url, url, master=None)
    async with run_gateway(toml, tmp_path) as gw, http() as client:
        for method, path in ROUTES:
            for headers in ({}, admin_headers(MASTER), admin_headers("anything")):
                resp = await client.request(method, f"{gw}{path}", headers=headers, json={})
                assert resp.status_code == 403, (method, path)
                assert _error(resp)["type"] == "permission_error"


async def test_tenants_crud(gateway: tuple[FakeUpstream, str]) -> None:
    _, gw = gateway
    async with http() as client:
        created = await admin(
            client,
            gw,
            "POST",
            "/admin/tenants",
            {
                "name": "acme",
                "monthly_budget_usd": 100,
                "rpm": 60,
                "tpm": 50000,
                "models": ["gpt-4o"],
                "provider_keys": {"up": "env:ACME_OPENAI_KEY"},
                "metadata": {"team": "search", "cost_center": 42},
            },
        )
        assert created.status_code == 201, created.text
        tenant = created.json()
        assert {k: tenant[k] for k in tenant if not k.endswith("_at")} == {
            "name": "acme",
            "monthly_budget_usd": 100.0,
            "rpm": 60,
            "tpm": 50000,
            "models": ["gpt-4o"],
            "provider_keys": {"up": "env:ACME_OPENAI_KEY"},
            "metadata": {"team": "search", "cost_center": 42},
        }
        again = await admin(client, gw, "POST", "/admin/tenants", {"name": "acme"})
        assert again.status_code == 409 and _error(again)["param"] == "name"
        assert (await admin(client, gw, "GET", "/admin/tenants/acme")).json() == tenant

        patched = await admin(
            client,
            gw,
            "PATCH",
            "/admin/tenants/acme",
            {"monthly_budget_usd": None, "rpm": 120, "models": [], "provider_keys": {}},
        )
        assert patched.status_code == 200
        after = patched.json()
        assert (after["monthly_budget_usd"], after["rpm"], after["tpm"], after["models"]) == (
            None,
            120,
            50000,
            [],
        )
        assert (
            after["metadata"] == tenant["metadata"] and after["created_at"] == tenant["created_at"]
        )
        assert after["provider_keys"] == {}

        key = (await tenant_and_key(client, gw, "acme"))["key"]
        auth = {"authorization": f"Bearer {key}"}
        assert (
            await client.post(f"{gw}/v1/chat/completions", json=chat(), headers=auth)
        ).status_code == 200
        assert (await admin(client, gw, "DELETE", "/admin/tenants/acme")).status_code == 204
        assert (await admin(client, gw, "GET", "/admin/tenants/acme")).status_code == 404
        assert (await admin(client, gw, "DELETE", "/admin/tenants/acme")).status_code == 404
        assert (
            await admin(client, gw, "PATCH", "/admin/tenants/acme", {"rpm": 1})
        ).status_code == 404
        listed = await admin(client, gw, "GET", "/admin/keys")
    assert listed.json()["data"] == []  # its keys went with it


INVALID = [
    ("/admin/tenants", {"name": ""}, "name"),
    ("/admin/tenants", {"name": "has space"}, "name"),
    ("/admin/tenants", {"name": "a" * 65}, "name"),
    ("/admin/tenants", {}, "name"),
    ("/admin/tenants", {"name": "x", "rpm": "60"}, "rpm"),
    ("/admin/tenants", {"name": "x", "rpm": 0}, "rpm"),
    ("/admin/tenants", {"name": "x", "tpm": -5}, "tpm"),
    ("/admin/tenants", {"name": "x", "monthly_budget_usd": -1}, "monthly_budget_usd"),
    ("/admin/tenants", {"name": "x", "models": "gpt-4o"}, "models"),
    ("/admin/tenants", {"name": "x", "models": [""]}, "models"),
    ("/admin/tenants", {"name": "x", "provider_keys": {"up": "sk-literal"}}, "provider_keys"),
    ("/admin/tenants", {"name": "x", "provider_keys": {"bad name": "env:X"}}, "provider_keys"),
    ("/admin/tenants", {"name": "x", "budget": 5}, "budget"),
    ("/admin/keys", {}, "tenant"),
    ("/admin/keys", {"tenant": "nobody"}, "tenant"),
    ("/admin/keys", {"tenant": "acme", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ("/admin/keys", {"tenant": "acme", "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
    ("/admin/keys", {"tenant": "acme", "expires_at": "soon"}, "expires_at"),
    ("/admin/keys", {"tenant": "acme", "rpm": 1.5}, "rpm"),
]


async def test_validation_errors_are_400_naming_the_field(
    gateway: tuple[FakeUpstream, str],
) -> None:
    _, gw = gateway
    async with http() as client:
        await admin(client, gw, "POST", "/admin/tenants", {"name": "acme"})
        for path, body, param in INVALID:
            resp = await admin(client, gw, "POST", path, body)
            assert resp.status_code == 400, (body, resp.text)
            error = _error(resp)
            assert error["type"] == "invalid_request_error", body
            assert error["param"] == param, body
            assert error["message"].startswith(f"{param}:"), body
        listed = (await admin(client, gw, "GET", "/admin/tenants")).json()["data"]
    assert [t["name"] for t in listed] == ["acme"]  # nothing was half-made


async def test_bodies_that_are_not_json_or_too_big(gateway: tuple[FakeUpstream, str]) -> None:
    _, gw = gateway
    async with http() as client:
        for raw in (b"", b"{", b"[]", b"null"):
            resp = await client.post(f"{gw}/admin/tenants", content=raw, headers=admin_headers())
            assert resp.status_code == 400, raw
            assert _error(resp)["type"] == "invalid_request_error"
        big = msgspec.json.encode({"name": "big", "metadata": {"x": "y" * 70_000}})
        resp = await client.post(f"{gw}/admin/tenants", content=big, headers=admin_headers())
        assert resp.status_code == 413
        bad_patch = await admin(client, gw, "PATCH", "/admin/tenants/x", {"name": "renamed"})
    assert bad_patch.status_code == 400 and _error(bad_patch)["param"] == "name"


async def test_keys_are_shown_once_and_listed_without_the_key(
    gateway: tuple[FakeUpstream, str],
) -> None:
    _, gw = gateway
    async with http() as client:
        await admin(client, gw, "POST", "/admin/tenants", {"name": "acme"})
        await admin(client, gw, "POST", "/admin/tenants", {"name": "other"})
        made = await admin(
            client,
            gw,
            "POST",
            "/admin/keys",
            {"tenant": "acme", "expires_at": "2999-01-01T00:00:00+02:00", "rpm": 5, "name": "ci"},
        )
        other = await admin(client, gw, "POST", "/admin/keys", {"tenant": "other"})
        created = made.json()
        listed = await admin(client, gw, "GET", "/admin/keys?tenant=acme")
        everyone = await admin(client, gw, "GET", "/admin/keys")
        missing = await admin(client, gw, "GET", "/admin/keys?tenant=nobody")
        revoke = await admin(client, gw, "DELETE", f"/admin/keys/{created['id']}")
        revoke_again = await admin(client, gw, "DELETE", f"/admin/keys/{created['id']}")
        after = await admin(client, gw, "GET", "/admin/keys?tenant=acme")
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    assert created["key"].startswith(created["prefix"]) and created["tenant"] == "acme"
    assert created["expires_at"] == "2998-12-31T22:00:00Z"
    assert {"id", "key", "tenant", "prefix", "expires_at"} <= set(created)
    [info] = listed.json()["data"]
    assert info["id"] == created["id"] and info["status"] == "active" and info["rpm"] == 5
    assert "key" not in info and "hash" not in info
    for resp in (listed, everyone, after):
        assert created["key"] not in resp.text and created["key"][11:] not in resp.text
    assert {k["tenant"] for k in everyone.json()["data"]} == {"acme", "other"}
    assert other.status_code == 201
    assert missing.status_code == 404 and _error(missing)["param"] == "tenant"
    assert revoke.status_code == 204 and revoke_again.status_code == 204
    [gone] = after.json()["data"]
    assert gone["status"] == "revoked" and gone["revoked_at"] is not None


async def test_lists_are_paginated_with_an_opaque_cursor(gateway: tuple[FakeUpstream, str]) -> None:
    _, gw = gateway
    names = [f"t{i:02d}" for i in range(7)]
    seen: list[str] = []
    async with http() as client:
        for name in reversed(names):
            await admin(client, gw, "POST", "/admin/tenants", {"name": name})
            await admin(client, gw, "POST", "/admin/keys", {"tenant": name})
        cursor: str | None = ""
        pages = 0
        while cursor is not None:
            query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = (await admin(client, gw, "GET", f"/admin/tenants{query}")).json()
            seen += [t["name"] for t in page["data"]]
            cursor = page["next_cursor"]
            pages += 1
        key_ids: list[str] = []
        cursor = ""
        while cursor is not None:
            query = "?limit=4" + (f"&cursor={cursor}" if cursor else "")
            page = (await admin(client, gw, "GET", f"/admin/keys{query}")).json()
            key_ids += [k["id"] for k in page["data"]]
            cursor = page["next_cursor"]
        bad = {
            q: await admin(client, gw, "GET", f"/admin/tenants?{q}")
            for q in ("limit=0", "limit=1001", "limit=x", "limit=-1", "cursor=%%%")
        }
    assert seen == names and pages == 3
    assert len(key_ids) == 7 and key_ids == sorted(key_ids)
    for query, resp in bad.items():
        assert resp.status_code == 400, query
        assert _error(resp)["param"] == query.split("=")[0]


async def test_names_and_ids_are_data_never_sql(gateway: tuple[FakeUpstream, str]) -> None:
    _, gw = gateway
    async with http() as client:
        keep = await tenant_and_key(client, gw, "acme")
        for attempt in INJECTIONS:
            path = quote(attempt, safe="")
            assert (await admin(client, gw, "GET", f"/admin/tenants/{path}")).status_code == 404
            assert (
                await admin(client, gw, "PATCH", f"/admin/tenants/{path}", {"rpm": 1})
            ).status_code == 404
            assert (await admin(client, gw, "DELETE", f"/admin/tenants/{path}")).status_code == 404
            assert (await admin(client, gw, "DELETE", f"/admin/keys/{path}")).status_code == 404
            listed = await admin(client, gw, "GET", "/admin/keys", params={"tenant": attempt})
            assert listed.status_code == 404
            named = await admin(client, gw, "POST", "/admin/tenants", {"name": attempt})
            assert named.status_code == 400 and _error(named)["param"] == "name"
            keyed = await admin(client, gw, "POST", "/admin/keys", {"tenant": attempt})
            assert keyed.status_code == 400
            paged = await admin(client, gw, "GET", "/admin/tenants", params={"cursor": attempt})
            assert paged.status_code in (200, 400)
            bearer = await client.post(
                f"{gw}/v1/chat/completions", json=chat(), headers={"x-api-key": attempt}
            )
            assert bearer.status_code == 401
        # Data that looks like SQL is stored as it is.
        stored = await admin(
            client,
            gw,
            "POST",
            "/admin/tenants",
            {"name": "data", "metadata": {a: a for a in INJECTIONS}, "models": INJECTIONS},
        )
        assert stored.status_code == 201
        back = (await admin(client, gw, "GET", "/admin/tenants/data")).json()
        tenants = (await admin(client, gw, "GET", "/admin/tenants")).json()["data"]
        still = await client.post(
            f"{gw}/v1/chat/completions",
            json=chat(),
            headers={"authorization": f"Bearer {keep['key']}"},
        )
    assert back["metadata"] == {a: a for a in INJECTIONS} and back["models"] == INJECTIONS
    assert [t["name"] for t in tenants] == ["acme", "data"]
    assert still.status_code == 200


async def test_openapi_is_valid_and_the_answers_conform(gateway: tuple[FakeUpstream, str]) -> None:
    _, gw = gateway
    async with http() as client:
        doc = (await admin(client, gw, "GET", "/admin/openapi.json")).json()
        answers = {
            "Tenant": await admin(
                client,
                gw,
                "POST",
                "/admin/tenants",
                {"name": "acme", "rpm": 5, "metadata": {"a": [1]}},
            ),
            "KeyCreated": await admin(
                client,
                gw,
                "POST",
                "/admin/keys",
                {"tenant": "acme", "expires_at": "2999-01-01T00:00:00Z"},
            ),
            "TenantList": await admin(client, gw, "GET", "/admin/tenants?limit=1"),
            "KeyList": await admin(client, gw, "GET", "/admin/keys"),
            "ErrorBody": await admin(client, gw, "POST", "/admin/tenants", {"name": 5}),
        }
    validate(doc, cls=OpenAPIV31SpecValidator)  # raises on an invalid document
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    templates = {"/admin/tenants/acme": "/admin/tenants/{name}"}
    templates["/admin/keys/key_0000000000000000"] = "/admin/keys/{id}"
    assert documented == {(m, templates.get(p, p)) for m, p in ROUTES}
    for name, resp in answers.items():
        schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(resp.json())
    # The request schemas refuse what the server refuses.
    create = {"$ref": "#/components/schemas/TenantCreate", "components": doc["components"]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(create).validate({"name": "x", "rpm": 0})
