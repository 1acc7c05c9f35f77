"""The official `openai` SDK's `responses.create` against the gateway, every provider kind
behind it on loopback (anthropic, gemini, openai-compatible: translated; openai, azure:
native; the in-process mock): text, stream, a function tool round trip (streamed and
not) and an error, with usage and cost checked."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.providers.responses_upstreams import KINDS, NATIVE, TOOL_RESULT, serving
from tests.providers.upstreams import ARGS, PRICING, TEXT, UPSTREAM_KEY, Kind
from tests.support import GUARD, run_gateway

TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    }
]
QUESTION = "What is the weather in Zürich?"

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
async def test_create(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        answer = await client(gw).responses.create(
            model=kind.model, input="hi", instructions="Be brief."
        )
        await check_usage_and_cost(kind)
    assert answer.output_text == TEXT
    assert answer.status == "completed"
    assert answer.usage is not None
    assert answer.usage.input_tokens == kind.usage.prompt_tokens
    assert answer.usage.output_tokens == kind.usage.completion_tokens
    assert answer.usage.input_tokens_details.cached_tokens == kind.usage.cached_tokens
    sent = upstream[0].requests[0]
    if kind.kind == "openai-compatible":  # no provider key, no auth plugin: a plain proxy
        assert sent.headers["authorization"] == "Bearer virtual-key"
    else:
        assert "virtual-key" not in json.dumps(sent.headers)  # the caller's key stays here
    if kind in NATIVE:
        assert sent.json()["instructions"] == "Be brief."  # the client's own body
    else:
        assert "Be brief." in sent.body.decode()  # as the provider's system prompt


@kinds
async def test_stream(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        stream = await client(gw).responses.create(model=kind.model, input="hi", stream=True)
        events = [event async for event in stream]
        await check_usage_and_cost(kind)
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == TEXT
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == TEXT
    assert final.usage is not None
    assert final.usage.input_tokens == kind.usage.prompt_tokens


@kinds
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_function_tool_round_trip(
    kind: Kind, streamed: bool, upstream, tmp_path: Path
) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        api = client(gw)

        async def turn(items: Any) -> Any:
            if not streamed:
                return await api.responses.create(model=kind.model, input=items, tools=TOOLS)
            async with api.responses.stream(model=kind.model, input=items, tools=TOOLS) as s:
                return await s.get_final_response()

        question: list[Any] = [{"role": "user", "content": QUESTION}]
        first = await turn(question)
        (call,) = first.output
        assert call.type == "function_call"
        assert call.name == "get_weather"
        assert json.loads(call.arguments) == ARGS
        result = {"type": "function_call_output", "call_id": call.call_id, "output": TOOL_RESULT}
        second = await turn([*question, call.model_dump(exclude_none=True), result])
    assert second.output_text == TEXT
    sent = upstream[0].requests[-1]
    assert tool_result_sent(kind, sent.json()) == (call.call_id, TOOL_RESULT)


def tool_result_sent(kind: Kind, body: Any) -> tuple[str, str]:
    """`(call id, result)` of the tool result the provider received, in its own format."""
    if kind in NATIVE:
        last = body["input"][-1]
        return last["call_id"], last["output"]
    if kind.kind == "anthropic":
        (block,) = body["messages"][-1]["content"]
        assert block["type"] == "tool_result"
        return block["tool_use_id"], block["content"]
    if kind.kind == "gemini":  # matched by function name, and the id the gateway made up
        (part,) = body["contents"][-1]["parts"]
        response = part["functionResponse"]
        assert response["name"] == "get_weather"
        call_id = body["contents"][-2]["parts"][0]["functionCall"].get("id", "call_0")
        return call_id, response["response"]["content"]
    last = body["messages"][-1]
    assert last["role"] == "tool"
    return last["tool_call_id"], last["content"]


@kinds
async def test_error(kind: Kind, upstream, tmp_path: Path) -> None:
    async with serving(kind, upstream, tmp_path) as gw:
        with pytest.raises(openai.APIStatusError) as caught:
            await client(gw).responses.create(model=kind.model, input="please fail")
    err = caught.value
    assert err.status_code == kind.error_status
    assert "error" in err.response.json()
    assert UPSTREAM_KEY not in err.response.text
    if kind.error_status == 429:
        assert err.response.headers.get("retry-after")


async def test_the_mock_answers_responses_too(tmp_path: Path) -> None:
    """`interlock serve` with no keys: the built-in mock serves /v1/responses."""
    toml = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'
    async with run_gateway(toml, tmp_path) as gw:
        answer = await client(gw).responses.create(model="gpt-4o-mini", input="hello")
        stream = await client(gw).responses.create(model="gpt-4o-mini", input="hello", stream=True)
        events = [event async for event in stream]
    assert answer.output_text
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed == answer.output_text  # the mock's text depends on the prompt only
    assert events[-1].type == "response.completed"
