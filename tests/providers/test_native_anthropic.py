"""Same format in, same format out: what Claude Code sends reaches Anthropic untouched.

A fake Anthropic upstream records what arrives; the client sends the fields the gateway
does not know (thinking, cache_control, an unknown top-level field) and beta headers,
and must find them upstream byte for byte (but the key and model_map), and receive the
upstream's exact events. Usage and cost count the prompt-cache reads and writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import msgspec
import pytest

from tests.support import Recorded, Reply, run_gateway

CAPTURED: list[dict[str, Any]] = []  # what the recording plugin saw in post_response

RECORDER = """
from interlock.core import Plugin, hookimpl
from tests.providers.test_native_anthropic import CAPTURED

class Rec(Plugin):
    name = "rec"

    @hookimpl
    def post_response(self, ctx):
        u = ctx.usage
        CAPTURED.append({"status": ctx.status, "wire": ctx.wire, "prompt": u.prompt_tokens,
                         "completion": u.completion_tokens, "cached": u.cached_tokens,
                         "written": u.cache_write_tokens, "cost": ctx.cost_usd,
                         "model": ctx.model})
"""

REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 2048,
    "system": [
        {
            "type": "text",
            "text": "You are Claude Code. " * 50,
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Fix the bug", "cache_control": {"type": "ephemeral"}}
            ],
        }
    ],
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    "future_field_nobody_knows": {"x": [1, 2, 3]},
}

USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 300,
    "cache_read_input_tokens": 4000,
    "output_tokens": 1,
}
MESSAGE = {
    "id": "msg_native",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6-20990101",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
        {"type": "text", "text": "Done."},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {**USAGE, "output_tokens": 42},
}


def _event(name: str, doc: Any) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps(doc).encode() + b"\n\n"


EVENTS = [
    _event(
        "message_start",
        {"type": "message_start", "message": {**MESSAGE, "content": [], "usage": USAGE}},
    ),
    _event(
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
    ),
    _event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hmm"},
        },
    ),
    _event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig=="},
        },
    ),
    _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _event(
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    ),
    _event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Done."},
        },
    ),
    _event("content_block_stop", {"type": "content_block_stop", "index": 1}),
    _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 42},
        },
    ),
    _event("message_stop", {"type": "message_stop"}),
]


async def _in_odd_chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 97):  # splits events (and a multi-byte char) anywhere
        yield data[i : i + 97]


def _answer(rec: Recorded) -> Reply:
    if rec.json().get("stream"):
        return Reply.sse(_in_odd_chunks(b"".join(EVENTS)))
    return Reply.json(MESSAGE)


def _config(url: str, tmp_path: Path) -> str:
    (tmp_path / "rec.py").write_text(RECORDER)
    return f"""
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{url}/v1"
api_key = "env:NATIVE_TEST_KEY"
models = ["sonnet"]
model_map = {{ "sonnet" = "claude-sonnet-4-6" }}
beta = ["configured-beta-1"]

[plugins.rec]
path = "{tmp_path / "rec.py"}"
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATIVE_TEST_KEY", "sk-ant-provider-key-0123456789")
    CAPTURED.clear()


def _expected_cost(completion: int) -> float:
    # claude-sonnet-4-6: input 3.0, cached 0.30, cache write 3.75, output 15.0 per 1M.
    return (12 * 3.0 + 4000 * 0.30 + 300 * 3.75 + completion * 15.0) / 1e6


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_code_request_reaches_anthropic_byte_for_byte(
    upstream, tmp_path: Path, stream: bool
) -> None:
    fake, url = upstream
    fake.on("/v1/messages", _answer)
    sent = {**REQUEST, "model": "sonnet", "stream": stream}
    raw = json.dumps(sent, ensure_ascii=False).encode()
    async with run_gateway(_config(url, tmp_path), tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{gw}/v1/messages",
                content=raw,
                headers={
                    "content-type": "application/json",
                    "x-api-key": "client-key-must-not-travel",
                    "anthropic-version": "2023-06-01",
                    "anthropic-beta": "interleaved-thinking-2025-05-14,context-management-2025-06-27",
                },
            )
    assert resp.status_code == 200, resp.text
    (got,) = fake.requests
    # The body upstream is the client's, but the model name model_map changed.
    assert got.json() == {**sent, "model": "claude-sonnet-4-6"}
    assert got.body.replace(b'"claude-sonnet-4-6"', b'"sonnet"') == raw
    assert got.headers["x-api-key"] == "sk-ant-provider-key-0123456789"
    assert got.headers["anthropic-version"] == "2023-06-01"
    assert got.headers["anthropic-beta"] == (
        "configured-beta-1,interleaved-thinking-2025-05-14,context-management-2025-06-27"
    )
    assert "client-key-must-not-travel" not in json.dumps(got.headers)
    if stream:
        assert resp.content == b"".join(EVENTS)  # the provider's own events, exactly
    else:
        assert resp.json() == MESSAGE
    (seen,) = CAPTURED
    assert seen["wire"] == "anthropic"
    assert (seen["prompt"], seen["cached"], seen["written"]) == (4312, 4000, 300)
    assert seen["completion"] == 42
    assert seen["cost"] == pytest.approx(_expected_cost(42))


async def test_the_anthropic_sdk_streams_through_the_native_path(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/messages", _answer)
    async with run_gateway(_config(url, tmp_path), tmp_path) as gw:
        client = anthropic.AsyncAnthropic(base_url=gw, api_key="client-key")
        async with client.messages.stream(
            model="sonnet",
            max_tokens=2048,
            system=REQUEST["system"],
            messages=REQUEST["messages"],
            thinking={"type": "enabled", "budget_tokens": 1024},
            extra_body={"future_field_nobody_knows": {"x": [1, 2, 3]}},
            extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
        ) as stream:
            final = await stream.get_final_message()
        await client.close()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.usage.cache_read_input_tokens == 4000
    body = fake.requests[0].json()
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["future_field_nobody_knows"] == {"x": [1, 2, 3]}


async def test_an_anthropic_error_keeps_its_type_and_message(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on(
        "/v1/messages",
        lambda r: Reply.json(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "thinking.budget_tokens: too small",
                },
            },
            400,
        ),
    )
    async with run_gateway(_config(url, tmp_path), tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"{gw}/v1/messages", json={**REQUEST, "model": "sonnet"})
    assert resp.status_code == 400
    error = resp.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert "thinking.budget_tokens: too small" in error["error"]["message"]


async def test_count_tokens_is_exact_from_an_anthropic_provider(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/messages/count_tokens", lambda r: Reply.json({"input_tokens": 4321}))
    body = {k: v for k, v in REQUEST.items() if k != "max_tokens"} | {"model": "sonnet"}
    async with run_gateway(_config(url, tmp_path), tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{gw}/v1/messages/count_tokens", json=body, headers={"anthropic-beta": "b1"}
            )
    assert resp.json() == {"input_tokens": 4321}
    (got,) = fake.requests
    assert got.json() == {**body, "model": "claude-sonnet-4-6"}
    assert got.headers["anthropic-beta"] == "configured-beta-1,b1"
    assert CAPTURED[0]["status"] == 200


async def test_count_tokens_is_an_estimate_for_other_providers(tmp_path: Path) -> None:
    async with run_gateway(
        '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n', tmp_path
    ) as gw:
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{gw}/v1/messages/count_tokens",
                json={"model": "m", "messages": [{"role": "user", "content": "x" * 400}]},
            )
    assert 90 <= resp.json()["input_tokens"] <= 130  # about four characters a token


async def test_failover_from_anthropic_to_an_openai_provider_translates(
    upstream, tmp_path: Path
) -> None:
    """The native body for the anthropic provider; the canonical one for the next."""
    fake, url = upstream
    fake.on(
        "/v1/messages",
        lambda r: Reply.json(
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, 529
        ),
    )
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "from openai"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    fake.on("/oai/chat/completions", lambda r: Reply.json(completion))
    router = tmp_path / "chain.py"
    router.write_text(
        "from interlock.core import Plugin, hookimpl, RoutingDecision, Candidate\n"
        "class Chain(Plugin):\n    name = 'chain'\n    @hookimpl\n    def route(self, ctx):\n"
        "        return RoutingDecision([Candidate('claude', 'sonnet'), Candidate('oai', 'gpt-4o')], 'chain')\n"
    )
    toml = (
        _config(url, tmp_path)
        + f"""
[[providers]]
name = "oai"
kind = "openai-compatible"
base_url = "{url}/oai"
models = ["gpt-4o"]

[plugins.chain]
path = "{router}"
"""
    )
    async with run_gateway(toml, tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"{gw}/v1/messages", json={**REQUEST, "model": "sonnet"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["content"] == [{"type": "text", "text": "from openai"}]
    native, translated = fake.requests
    assert native.json()["thinking"] == REQUEST["thinking"]
    sent = msgspec.json.decode(translated.body)
    assert sent["messages"][0] == {"role": "system", "content": REQUEST["system"][0]["text"]}
    assert "thinking" not in sent


async def test_count_tokens_never_sends_a_body_past_the_policy_plugins(
    upstream, tmp_path: Path
) -> None:
    """A pre_forward plugin (redaction) would have edited the body; a count does not run
    pre_forward, so with one enabled the count is an estimate and nothing goes upstream."""
    fake, url = upstream
    fake.on("/v1/messages/count_tokens", lambda r: Reply.json({"input_tokens": 4321}))
    (tmp_path / "redact.py").write_text(
        "from interlock.core import Plugin, hookimpl\n"
        "class Redact(Plugin):\n    name = 'redact'\n    @hookimpl\n    def pre_forward(self, ctx):\n"
        "        ctx.map_texts(lambda t: t.replace('secret', '[X]'))\n"
    )
    toml = _config(url, tmp_path) + f'\n[plugins.redact]\npath = "{tmp_path / "redact.py"}"\n'
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "my secret " * 40}]}
    async with run_gateway(toml, tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            resp = await client.post(f"{gw}/v1/messages/count_tokens", json=body)
    assert resp.status_code == 200
    assert resp.json()["input_tokens"] != 4321
    assert fake.requests == []
