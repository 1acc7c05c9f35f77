"""The built-in mock LLM: deterministic, realistic usage, real SSE streaming."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec

from interlock.core.mock_server import create_mock_app
from tests.support import run_gateway, serve_asgi

MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'


async def test_mock_answers_deterministically_with_usage(tmp_path: Path) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "tell me about gateways"}]}
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        one = (await client.post(f"{gw}/v1/chat/completions", json=body)).json()
        two = (await client.post(f"{gw}/v1/chat/completions", json=body)).json()
        other = (
            await client.post(
                f"{gw}/v1/chat/completions",
                json={**body, "messages": [{"role": "user", "content": "else"}]},
            )
        ).json()
    text = one["choices"][0]["message"]["content"]
    assert (
        text == two["choices"][0]["message"]["content"] != other["choices"][0]["message"]["content"]
    )
    assert one["usage"]["completion_tokens"] == len(text.split())
    assert one["usage"]["prompt_tokens"] == len("tell me about gateways") // 4 + 1


async def test_mock_streams_at_least_five_chunks(tmp_path: Path) -> None:
    body = {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "stream please"}],
    }
    async with (
        run_gateway(MOCK + "chunks = 6\nwords = 12\n", tmp_path) as gw,
        httpx.AsyncClient() as client,
    ):
        resp = await client.post(f"{gw}/v1/chat/completions", json=body)
        whole = (
            await client.post(f"{gw}/v1/chat/completions", json={**body, "stream": False})
        ).json()
    events = [e[6:] for e in resp.content.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    docs = [msgspec.json.decode(e) for e in events[:-1]]
    contents = [d["choices"][0]["delta"].get("content") for d in docs if d["choices"]]
    assert sum(1 for c in contents if c) >= 5
    assert "".join(c or "" for c in contents) == whole["choices"][0]["message"]["content"]
    assert docs[-1]["usage"]["completion_tokens"] == 12


async def test_mock_failure_rate_gives_retryable_503(tmp_path: Path) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    async with (
        run_gateway(MOCK + "failure_rate = 1.0\n", tmp_path) as gw,
        httpx.AsyncClient() as client,
    ):
        resp = await client.post(f"{gw}/v1/chat/completions", json=body)
    assert resp.status_code == 503
    assert resp.json()["error"]["type"] == "overloaded_error"


async def test_mock_upstream_server_is_openai_compatible(tmp_path: Path) -> None:
    async with serve_asgi(create_mock_app()) as mock_url:
        toml = f'[[providers]]\nname = "local"\nkind = "openai-compatible"\nbase_url = "{mock_url}/v1"\nmodels = ["mock-1"]\n'
        async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
            resp = await client.post(
                f"{gw}/v1/chat/completions",
                json={"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]},
            )
            streamed = await client.post(
                f"{gw}/v1/chat/completions",
                json={
                    "model": "mock-1",
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
            emb = await client.post(
                f"{gw}/v1/embeddings", json={"model": "mock-1", "input": ["a", "b"]}
            )
    assert resp.json()["object"] == "chat.completion"
    assert streamed.content.endswith(b"data: [DONE]\n\n") and b'"usage":{' not in streamed.content
    assert len(emb.json()["data"]) == 2
