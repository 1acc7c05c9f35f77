"""Nothing a client sends chooses the upstream address or reaches the provider as a
credential; the provider key goes only to the configured upstream."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from interlock.core.app import create_app
from interlock.core.config import ConfigError
from tests.core.test_proxy_openai import COMPLETION, USAGE_CHUNK, chunk, config
from tests.support import Reply, fake_upstream, gateway_config, run_gateway, sse

HI = [{"role": "user", "content": "hi"}]
UPSTREAM = "sk-test-upstream-key-0000"


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


# -- redirects ---------------------------------------------------------------------------------
async def test_redirects_are_never_followed(upstream, client_kind: str, tmp_path: Path) -> None:
    """A provider (or anything in its path) answering 307 would make a following client
    re-send the body and the key to the Location: the target must receive nothing."""
    fake, url = upstream
    async with fake_upstream() as (target, target_url):
        target.on("/steal", lambda r: Reply.json(COMPLETION))
        moved = Reply(307, b"", {"location": f"{target_url}/steal?x=1"})
        fake.on("/v1/chat/completions", lambda r: moved)
        fake.on("/v1/messages", lambda r: moved)
        toml = config(url, client=client_kind) + textwrap.dedent(f"""
            [[providers]]
            name = "claude"
            kind = "anthropic"
            base_url = "{url}"
            api_key = "sk-ant-redirected-key-0000"
            models = ["claude-sonnet-4-6"]
            """)
        async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
            answers = [
                await client.post(
                    f"{gw}/v1/chat/completions",
                    json={"model": model, "messages": HI, "stream": stream},
                )
                for model in ("gpt-4o", "claude-sonnet-4-6")
                for stream in (False, True)
            ]
        assert target.requests == []
    assert len(fake.requests) == 4
    for resp in answers:
        assert resp.status_code == 502
        error = resp.json()["error"]
        assert error["type"] == "upstream_error"
        assert "HTTP 307" in error["message"] and "redirect" in error["message"]
        assert "steal" not in error["message"]  # the Location is not repeated


# -- names that land in a URL path ---------------------------------------------------------------
PATH_KINDS = {
    "azure": f"""
[[providers]]
name = "az"
kind = "azure"
base_url = "URL"
api_key = "{UPSTREAM}"
models = ["*"]
""",
    "gemini": f"""
[[providers]]
name = "gem"
kind = "gemini"
base_url = "URL/v1beta"
api_key = "{UPSTREAM}"
models = ["*"]
""",
}


PATH_CHANGING = ["..", ".", "...", "a/b", "../../admin", "a\\b", "x/.."]


@pytest.mark.parametrize("kind", sorted(PATH_KINDS))
async def test_names_that_would_change_the_url_path_are_refused(
    upstream, client, tmp_path: Path, kind: str
) -> None:
    fake, url = upstream
    async with run_gateway(PATH_KINDS[kind].replace("URL", url), tmp_path) as gw:
        for model in PATH_CHANGING:
            chat = {"model": model, "messages": HI}
            answers = [
                await client.post(f"{gw}/v1/chat/completions", json=chat),
                await client.post(f"{gw}/v1/chat/completions", json={**chat, "stream": True}),
                await client.post(f"{gw}/v1/embeddings", json={"model": model, "input": "x"}),
                await client.post(f"{gw}/v1/messages", json={**chat, "max_tokens": 5}),
            ]
            for resp in answers:
                assert resp.status_code == 400, (model, resp.text)
                message = resp.json()["error"]["message"]
                assert "`model`" in message and "URL path" in message
            assert answers[0].json()["error"]["param"] == "model"
    assert fake.requests == []  # never forwarded


@pytest.mark.parametrize("kind", sorted(PATH_KINDS))
@pytest.mark.parametrize("key", ["models", "model_map"])
def test_configured_names_that_would_change_the_url_path_stop_start_up(
    tmp_path: Path, kind: str, key: str
) -> None:
    table = PATH_KINDS[kind].replace("URL", "https://example.test")
    if key == "models":
        table = table.replace('models = ["*"]', 'models = ["ok", ".."]')
    else:
        table += 'model_map = { "gpt-4o" = "../other" }\n'
    with pytest.raises(ConfigError, match=f"key `{key}`: `model` .* cannot be used in a URL path"):
        create_app(gateway_config(table, tmp_path))


async def test_model_names_with_slashes_still_reach_body_only_adapters(
    upstream, client, tmp_path: Path
) -> None:
    """Where the model goes only into the body (OpenAI format, Anthropic), a vendor-prefixed
    name is ordinary: the URL path does not change."""
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = config(url).replace('models = ["gpt-4o", "gpt-4o-mini"]', 'models = ["*"]')
    async with run_gateway(toml, tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "openai/../gpt-4o", "messages": HI}
        )
    assert resp.status_code == 200
    assert fake.requests[0].path == "/v1/chat/completions"
    assert fake.requests[0].json()["model"] == "openai/../gpt-4o"


# -- stream_options: null ------------------------------------------------------------------------
STREAM_OPTIONS = {
    "null": b'"stream_options":null,',
    "null-with-escaped-key": b'"stream\\u005foptions":null,',
    "empty": b'"stream_options":{},',
    "absent": b"",
}


async def test_include_usage_is_set_once_whatever_the_client_sent(
    upstream, client, tmp_path: Path
) -> None:
    fake, url = upstream
    events = [sse(chunk("hi")), sse(chunk(None, "stop")), sse(USAGE_CHUNK), b"data: [DONE]\n\n"]
    fake.on("/v1/chat/completions", lambda r: Reply.sse(_replay(events)))
    async with run_gateway(config(url), tmp_path) as gw:
        for case, options in STREAM_OPTIONS.items():
            raw = (
                b'{"model":"gpt-4o","stream":true,'
                + options
                + b'"messages":[{"role":"user","content":"hi"}]}'
            )
            resp = await client.post(
                f"{gw}/v1/chat/completions",
                content=raw,
                headers={"content-type": "application/json"},
            )
            sent = fake.requests[-1].body
            keys = sent.count(b"stream_options") + sent.count(b"stream\\u005foptions")
            assert keys == 1, (case, sent)
            assert msgspec.json.decode(sent)["stream_options"] == {"include_usage": True}
            assert b'"usage":{' not in resp.content  # the client did not ask for the chunk


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
