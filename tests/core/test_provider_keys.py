"""Which key goes upstream (core/providers/base.py `keyed`): the provider's own; a
tenant's override from `ctx.identity.provider_keys`, in each wire format's own header;
and, with no auth plugin and no provider key, the client's own key (a plain proxy). A
caller that has an identity never has its own credential forwarded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.providers.upstreams import COMPATIBLE, KINDS, UPSTREAM_KEY, Kind, install
from tests.support import FakeUpstream, run_gateway

OVERRIDE = "sk-tenant-override-key-4242"
HEADER = {
    "anthropic": ("x-api-key", ""),
    "gemini": ("x-goog-api-key", ""),
    "azure": ("api-key", ""),
    "openai-compatible": ("authorization", "Bearer "),
}


def identity_plugin(tmp_path: Path, provider_keys: dict[str, str]) -> str:
    path = tmp_path / "identity.py"
    path.write_text(
        f"""
from interlock.core import Identity, Plugin, hookimpl

class SetIdentity(Plugin):
    name = "set_identity"

    @hookimpl
    def pre_auth(self, ctx):
        ctx.identity = Identity(tenant="t", provider_keys={provider_keys!r})
"""
    )
    return f'\n[plugins.set_identity]\npath = "{path}"\n'


def request(kind: Kind, stream: bool = False) -> dict[str, object]:
    return {
        "model": kind.model,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
    }


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_tenants_override_replaces_the_providers_key(
    kind: Kind, stream: bool, upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    install(kind, fake)
    provider = next(
        line.split('"')[1] for line in kind.table(url).splitlines() if line.startswith("name")
    )
    toml = kind.config(url, recorder=False) + identity_plugin(tmp_path, {provider: OVERRIDE})
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(
            f"{gw}/v1/chat/completions",
            json=request(kind, stream),
            headers={"authorization": "Bearer ik-client-virtual-key"},
        )
    assert resp.status_code == 200, resp.text
    [sent] = fake.requests
    name, prefix = HEADER[kind.kind]
    assert sent.headers[name] == prefix + OVERRIDE
    assert UPSTREAM_KEY not in repr(sent) and "ik-client-virtual-key" not in repr(sent)


async def test_an_override_for_another_provider_changes_nothing(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    kind = KINDS[0]
    fake, url = upstream
    install(kind, fake)
    toml = kind.config(url, recorder=False) + identity_plugin(tmp_path, {"elsewhere": OVERRIDE})
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(f"{gw}/v1/chat/completions", json=request(kind))
    assert resp.status_code == 200
    assert fake.requests[0].headers["x-api-key"] == UPSTREAM_KEY


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/chat/completions", {"authorization": "Bearer client-own-key-1"}),
        ("/v1/messages", {"x-api-key": "client-own-key-1"}),
    ],
    ids=["bearer", "x-api-key"],
)
async def test_without_auth_and_provider_key_the_clients_key_goes_upstream(
    path: str, headers: dict[str, str], upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    install(COMPATIBLE, fake)
    body = {**request(COMPATIBLE), "max_tokens": 50}
    async with run_gateway(COMPATIBLE.config(url, recorder=False), tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"{gw}{path}", json=body, headers=headers)
            bare = await client.post(f"{gw}{path}", json=body)
    assert resp.status_code == 200 and bare.status_code == 200
    assert fake.requests[0].headers["authorization"] == "Bearer client-own-key-1"
    assert "authorization" not in fake.requests[1].headers
    assert "x-api-key" not in fake.requests[0].headers


async def test_a_caller_with_an_identity_never_has_its_key_forwarded(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    install(COMPATIBLE, fake)
    toml = COMPATIBLE.config(url, recorder=False) + identity_plugin(tmp_path, {})
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(
            f"{gw}/v1/chat/completions",
            json=request(COMPATIBLE),
            headers={"authorization": "Bearer ik-client-virtual-key"},
        )
    assert resp.status_code == 200
    assert "authorization" not in fake.requests[0].headers
    assert "ik-client-virtual-key" not in repr(fake.requests[0])
