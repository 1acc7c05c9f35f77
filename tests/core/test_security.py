"""Nothing a client sends chooses the upstream address or reaches the provider as a
credential; the provider key goes only to the configured upstream."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.core.test_proxy_openai import COMPLETION, config
from tests.support import Reply, run_gateway


async def test_client_cannot_redirect_the_upstream(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "api_base": "http://169.254.169.254/latest",
        "base_url": "http://169.254.169.254",
    }
    headers = {
        "host": "169.254.169.254",
        "x-forwarded-host": "169.254.169.254",
        "authorization": "Bearer client-virtual-key",
        "x-api-key": "client-virtual-key",
        "cookie": "session=abc",
    }
    async with run_gateway(config(url), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(f"{gw}/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 200
    [sent] = fake.requests  # the configured upstream got it, and nothing else was called
    assert sent.headers["authorization"] == "Bearer sk-test-upstream-key-0000"
    for name in ("x-api-key", "cookie", "x-forwarded-host"):
        assert name not in sent.headers
    assert "client-virtual-key" not in str(sent.headers)


async def test_model_map_and_extra_headers(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = config(
        url,
        'model_map = { "gpt-4o" = "gpt-4o-2024-08-06" }\nheaders = { "OpenAI-Organization" = "org-1" }',
    )
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        await client.post(
            f"{gw}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": 2},
        )
    sent = fake.requests[0]
    assert sent.json() == {
        "model": "gpt-4o-2024-08-06",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 2,
    }
    assert sent.headers["openai-organization"] == "org-1"
