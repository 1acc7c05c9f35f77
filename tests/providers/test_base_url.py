"""What a new user pastes as `base_url` works (the vendor SDKs' own host-only form, or the
versioned one), and a 404 from a provider says which provider and which URL path failed,
never the key or the query string."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from interlock.core.config import ProviderConfig
from interlock.core.providers.anthropic import AnthropicProvider
from interlock.core.providers.base import HttpProvider
from interlock.core.providers.gemini import GeminiProvider
from tests.providers.test_golden import context
from tests.providers.upstreams import ANTHROPIC, AZURE, GEMINI, UPSTREAM_KEY, Kind, install
from tests.support import run_gateway

HI = [{"role": "user", "content": "hi"}]
CTX = {"model": "m", "messages": HI}


@pytest.mark.parametrize(
    ("cls", "base_url", "url"),
    [
        (AnthropicProvider, "https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        (AnthropicProvider, "https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"),
        (
            AnthropicProvider,
            "https://api.anthropic.com/v1",
            "https://api.anthropic.com/v1/messages",
        ),
        (
            AnthropicProvider,
            "https://api.anthropic.com/v1/",
            "https://api.anthropic.com/v1/messages",
        ),
        (
            AnthropicProvider,
            "https://proxy.example/anthropic",
            "https://proxy.example/anthropic/v1/messages",
        ),
        (
            GeminiProvider,
            "https://generativelanguage.googleapis.com",
            "https://generativelanguage.googleapis.com/v1beta/models/m:generateContent",
        ),
        (
            GeminiProvider,
            "https://generativelanguage.googleapis.com/v1beta/",
            "https://generativelanguage.googleapis.com/v1beta/models/m:generateContent",
        ),
        (
            GeminiProvider,
            "https://generativelanguage.googleapis.com/v1",
            "https://generativelanguage.googleapis.com/v1/models/m:generateContent",
        ),
        (
            GeminiProvider,
            "https://generativelanguage.googleapis.com/v1alpha",
            "https://generativelanguage.googleapis.com/v1alpha/models/m:generateContent",
        ),
    ],
)
async def test_base_url_with_or_without_the_version(
    cls: type[HttpProvider], base_url: str, url: str
) -> None:
    provider = cls(ProviderConfig(name="p", kind=cls.kind, base_url=base_url, api_key="k"))
    try:
        assert provider.chat_request(context(CTX), "m", False)[0] == url
    finally:
        await provider.aclose()


@pytest.mark.parametrize("kind", [ANTHROPIC, GEMINI], ids=["anthropic", "gemini"])
async def test_the_sdk_base_url_reaches_the_versioned_path(
    kind: Kind, upstream, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = upstream
    install(kind, fake)
    toml = kind.config(url, recorder=False).replace(f'"{url}/v1beta"', f'"{url}"')
    toml = toml.replace(f'"{url}/v1"', f'"{url}"')
    assert f'base_url = "{url}"\n' in toml
    async with run_gateway(toml, tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json={"model": kind.model, "messages": HI}
        )
    assert resp.status_code == 200, resp.text
    assert fake.requests[0].path in (
        "/v1/messages",
        "/v1beta/models/gemini-2.5-flash:generateContent",
    )


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        (ANTHROPIC, "/v1/messages"),
        (GEMINI, "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
        (AZURE, "/openai/deployments/gpt4o-prod/chat/completions"),
    ],
    ids=["anthropic", "gemini", "azure"],
)
async def test_a_provider_404_names_the_provider_and_the_path(
    kind: Kind, path: str, upstream, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Nothing answers on that path (a wrong base_url): the fake's generic 404."""
    _, url = upstream
    toml = kind.config(url + "/wrong", recorder=False)
    async with run_gateway(toml, tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions",
            json={"model": kind.model, "messages": HI, "stream": True},
        )
    assert resp.status_code == 404
    message = resp.json()["error"]["message"]
    name = {"anthropic": "claude", "gemini": "gemini", "azure": "azure"}[kind.kind]
    assert message == f"provider '{name}' answered HTTP 404 for POST /wrong{path}: no such path"
    assert UPSTREAM_KEY not in resp.text
    assert "?" not in message and "alt=sse" not in message and "api-version" not in message
