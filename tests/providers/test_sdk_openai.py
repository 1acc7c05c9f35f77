"""The official `openai` SDK against the gateway, each provider kind behind it on loopback:
chat, stream, tool call (streamed too) and error, with usage and cost checked."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.providers.upstreams import (
    ANTHROPIC,
    KINDS,
    PRICING,
    UPSTREAM_KEY,
    Kind,
    serving,
)
from tests.support import GUARD, run_gateway

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]

kinds = pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])


def client(gw: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw + "/v1", api_key="virtual-key", max_retries=0)


async def recorded() -> tuple[Any, float]:
    recorder = sys.modules["interlock_local_plugin_recorder"].INSTANCE
    await asyncio.wait_for(recorder.arrived.wait(), GUARD)
    usage, cost, _, _ = recorder.records[-1]
    return usage, cost


async def check_usage_and_cost(kind: Kind) -> None:
    usage, cost = await recorded()
    assert usage == kind.usage
    assert cost == pytest.approx(PRICING.cost(kind.model, kind.usage))
    assert cost > 0


@kinds
async def test_chat(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        answer = await client(gw).chat.completions.create(
            model=kind.model, messages=[{"role": "user", "content": "hi"}]
        )
        await check_usage_and_cost(kind)
    assert answer.choices[0].message.content == "Grüezi from Zürich ☀️"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == kind.usage.prompt_tokens
    assert answer.usage.completion_tokens == kind.usage.completion_tokens
    sent = upstream[0].requests[0]
    if kind.kind == "openai-compatible":  # no provider key, no auth plugin: a plain proxy
        assert sent.headers["authorization"] == "Bearer virtual-key"
    else:
        assert "virtual-key" not in json.dumps(sent.headers)  # the caller's key stays here


@kinds
async def test_stream(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        stream = await client(gw).chat.completions.create(
            model=kind.model,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        await check_usage_and_cost(kind)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Grüezi from Zürich ☀️"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == kind.usage.completion_tokens


@kinds
async def test_tool_call(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        answer = await client(gw).chat.completions.create(
            model=kind.model,
            messages=[{"role": "user", "content": "weather in Zürich?"}],
            tools=TOOLS,
            tool_choice="auto",
        )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Zürich", "unit": "celsius"}  # type: ignore[union-attr]


@kinds
async def test_streamed_tool_call(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        stream = await client(gw).chat.completions.create(
            model=kind.model,
            messages=[{"role": "user", "content": "weather in Zürich?"}],
            tools=TOOLS,
            stream=True,
        )
        chunks = [c async for c in stream]
        await check_usage_and_cost(kind)  # usage settles without include_usage too
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id and calls[0].function and calls[0].function.name == "get_weather"
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert json.loads(arguments) == {"city": "Zürich", "unit": "celsius"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


@kinds
async def test_error(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        with pytest.raises(openai.APIStatusError) as caught:
            await client(gw).chat.completions.create(
                model=kind.model, messages=[{"role": "user", "content": "please fail"}]
            )
    err = caught.value
    assert err.status_code == kind.error_status
    body = err.response.text
    assert "error" in err.response.json()
    assert UPSTREAM_KEY not in body
    if kind.error_status == 429:
        assert err.response.headers.get("retry-after")


async def test_anthropic_error_event_mid_stream_reaches_the_client(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream

    async def events() -> Any:
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-6",
            "usage": {"input_tokens": 9, "output_tokens": 1},
        }
        yield (
            b"event: message_start\ndata: "
            + json.dumps({"type": "message_start", "message": message}).encode()
            + b"\n\n"
        )
        yield b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
        yield b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}\n\n'
        yield b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'

    from tests.support import Reply

    fake.on("/v1/messages", lambda r: Reply.sse(events()))
    async with run_gateway(ANTHROPIC.config(url), tmp_path) as gw:
        stream = await client(gw).chat.completions.create(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        seen: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
        usage, _ = await recorded()
    assert "".join(seen) == "Hel"
    assert "overloaded" in str(caught.value)
    assert usage.prompt_tokens == 9  # the provider's prompt count is kept
    assert usage.estimated


async def test_gemini_embeddings(upstream, tmp_path: Path) -> None:
    from tests.providers.upstreams import GEMINI
    from tests.support import Reply

    fake, url = upstream
    answer = {"embeddings": [{"values": [0.1, -0.2]}, {"values": [0.3, 0.4]}]}
    fake.on("/v1beta/models/text-embedding-004:batchEmbedContents", lambda r: Reply.json(answer))
    config = GEMINI.table(url).replace(
        'models = ["gemini-2.5-flash"]', 'models = ["gemini-2.5-flash", "text-embedding-004"]'
    )
    async with run_gateway(config, tmp_path) as gw:
        result = await client(gw).embeddings.create(
            model="text-embedding-004", input=["Grüezi", "Zürich"], dimensions=2
        )
    # The SDK asked for base64 (its default) and decoded the float32s back.
    assert [d.embedding for d in result.data] == [
        pytest.approx([0.1, -0.2]),
        pytest.approx([0.3, 0.4]),
    ]
    assert result.usage.prompt_tokens > 0
    sent = fake.requests[0].json()
    assert sent["requests"][1] == {
        "model": "models/text-embedding-004",
        "outputDimensionality": 2,
        "content": {"parts": [{"text": "Zürich"}]},
    }
