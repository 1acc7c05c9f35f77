"""The official `anthropic` SDK against the gateway's `/v1/messages`, each provider kind
behind it on loopback: chat, stream, tool call (streamed too) and error, in Anthropic's
shapes, with usage and cost checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import msgspec
import pytest

from tests.providers.test_sdk_openai import check_usage_and_cost, recorded
from tests.providers.upstreams import KINDS, UPSTREAM_KEY, Kind, serving
from tests.support import run_gateway

TOOLS: Any = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]

kinds = pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])


def client(gw: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw, api_key="virtual-key", max_retries=0)


def expected_usage(kind: Kind) -> dict[str, int]:
    u = kind.usage
    return {
        "input_tokens": u.prompt_tokens - u.cached_tokens - u.cache_write_tokens,
        "output_tokens": u.completion_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    }


def usage_of(usage: Any) -> dict[str, int]:
    return {k: getattr(usage, k) for k in expected_usage_keys}


expected_usage_keys = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


async def stream_failure(gw: str, model: str) -> anthropic.APIStatusError:
    """Read a stream to its end; the error event it ends with, as the SDK raises it."""
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client(gw).messages.stream(
            model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for _ in stream:
                pass
    return caught.value


@kinds
async def test_chat(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        message = await client(gw).messages.create(
            model=kind.model,
            max_tokens=256,
            system="Be brief.",
            messages=[{"role": "user", "content": "hi"}],
        )
        await check_usage_and_cost(kind)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == kind.model
    assert message.content[0].type == "text"
    assert message.content[0].text == "Grüezi from Zürich ☀️"
    assert message.stop_reason == "end_turn"
    assert usage_of(message.usage) == expected_usage(kind)
    sent = upstream[0].requests[0]
    if kind.kind == "openai-compatible":  # no provider key, no auth plugin: a plain proxy
        assert sent.headers["authorization"] == "Bearer virtual-key"
    else:
        assert "virtual-key" not in json.dumps(sent.headers)  # the caller's key stays here
    assert b"Be brief." in sent.body  # the system prompt reached the provider


@kinds
async def test_stream(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        async with client(gw).messages.stream(
            model=kind.model, max_tokens=256, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        await check_usage_and_cost(kind)
    assert "".join(pieces) == "Grüezi from Zürich ☀️"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == kind.usage.completion_tokens
    assert final.usage.cache_read_input_tokens == kind.usage.cached_tokens


@kinds
async def test_tool_call(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        message = await client(gw).messages.create(
            model=kind.model,
            max_tokens=256,
            tools=TOOLS,
            tool_choice={"type": "auto"},
            messages=[{"role": "user", "content": "weather in Zürich?"}],
        )
    assert message.stop_reason == "tool_use"
    block = message.content[-1]
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input == {"city": "Zürich", "unit": "celsius"}


@kinds
async def test_streamed_tool_call(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        async with client(gw).messages.stream(
            model=kind.model,
            max_tokens=256,
            tools=TOOLS,
            messages=[{"role": "user", "content": "weather in Zürich?"}],
        ) as stream:
            events = [event async for event in stream]
            final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    block = final.content[-1]
    assert block.type == "tool_use"
    assert block.input == {"city": "Zürich", "unit": "celsius"}
    fragments = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert json.loads("".join(fragments)) == {"city": "Zürich", "unit": "celsius"}


async def test_tool_result_round_trip(upstream, tmp_path: Path) -> None:
    """A second turn carrying the tool result reaches an OpenAI-format upstream as a
    `tool` message right after the assistant's call."""
    from tests.providers.upstreams import COMPATIBLE

    fake, _ = upstream
    async with serving(COMPATIBLE, upstream, tmp_path) as gw:
        await client(gw).messages.create(
            model="llama3",
            max_tokens=100,
            tools=TOOLS,
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_9",
                            "name": "get_weather",
                            "input": {"city": "Bern"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "18°C"},
                        {"type": "text", "text": "Thanks"},
                    ],
                },
            ],
        )
    sent = fake.requests[0].json()
    assert sent["model"] == "llama-3.3-70b-versatile"  # model_map applied
    assert fake.requests[0].headers["x-team"] == "search"  # extra header sent
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Bern"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_9", "content": "18°C"},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
    ]


@kinds
async def test_error(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client(gw).messages.create(
                model=kind.model, max_tokens=10, messages=[{"role": "user", "content": "fail"}]
            )
    err = caught.value
    assert err.status_code == kind.error_status
    body = err.response.json()
    assert body["type"] == "error"
    assert (
        body["error"]["type"]
        == {
            400: "invalid_request_error",
            429: "rate_limit_error",
            503: "overloaded_error",
        }[kind.error_status]
    )
    assert UPSTREAM_KEY not in err.response.text


async def test_stream_error_mid_way_is_an_error_event(upstream, tmp_path: Path) -> None:
    from tests.providers.upstreams import ANTHROPIC, in_small_chunks
    from tests.support import Reply

    fake, url = upstream
    events = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6","usage":{"input_tokens":9,"output_tokens":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    fake.on("/v1/messages", lambda r: Reply.sse(in_small_chunks(events)))
    async with run_gateway(ANTHROPIC.config(url), tmp_path) as gw:
        caught = await stream_failure(gw, "claude-sonnet-4-6")
        usage, _ = await recorded()
    assert "Overloaded" in str(caught)
    assert usage.estimated


async def test_bad_request_names_the_field_in_anthropic_shape(client_http, tmp_path: Path) -> None:
    from tests.providers.upstreams import ANTHROPIC

    async with run_gateway(ANTHROPIC.config("http://127.0.0.1:9", recorder=False), tmp_path) as gw:
        resp = await client_http.post(
            f"{gw}/v1/messages",
            content=msgspec.json.encode(
                {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
            ),
        )
        bad_block = await client_http.post(
            f"{gw}/v1/messages",
            json={
                "model": "claude-sonnet-4-6",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}],
            },
        )
    assert resp.status_code == 400
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in resp.json()["error"]["message"]
    assert bad_block.status_code == 400
    assert "messages[0].content" in bad_block.json()["error"]["message"]


@pytest.fixture
async def client_http() -> Any:
    import httpx

    async with httpx.AsyncClient(timeout=10.0) as c:
        yield c


async def test_openai_format_error_event_mid_stream_becomes_an_error_event(
    upstream, tmp_path: Path
) -> None:
    from tests.providers.upstreams import COMPATIBLE, in_small_chunks
    from tests.support import Reply

    fake, url = upstream
    events = (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
        b'data: {"error":{"message":"upstream exploded","type":"server_error"}}\n\n'
    )
    fake.on("/openai/v1/chat/completions", lambda r: Reply.sse(in_small_chunks(events)))
    async with run_gateway(COMPATIBLE.config(url), tmp_path) as gw:
        caught = await stream_failure(gw, "llama3")
    assert "upstream exploded" in str(caught)


async def test_mock_provider_speaks_anthropic(tmp_path: Path) -> None:
    config = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["mock-1"]\n'
    async with run_gateway(config, tmp_path) as gw:
        message = await client(gw).messages.create(
            model="mock-1", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        async with client(gw).messages.stream(
            model="mock-1", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
    assert message.content[0].type == "text"
    assert text == message.content[0].text
    assert final.usage.output_tokens == message.usage.output_tokens > 0


async def test_count_tokens_answers_an_estimate(tmp_path: Path) -> None:
    """Clients built for Claude call /v1/messages/count_tokens; the gateway estimates."""
    import anthropic as anthropic_sdk

    toml = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'
    async with run_gateway(toml, tmp_path) as gw:
        sdk = anthropic_sdk.AsyncAnthropic(base_url=gw, api_key="x", max_retries=0)
        short = await sdk.messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}]
        )
        long = await sdk.messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "word " * 400}]
        )
        with pytest.raises(anthropic_sdk.BadRequestError) as caught:
            await sdk.messages.count_tokens(model="claude-sonnet-4-6", messages=[])
    assert 0 < short.input_tokens < 40 < 400 < long.input_tokens
    assert caught.value.body["error"]["type"] == "invalid_request_error"
