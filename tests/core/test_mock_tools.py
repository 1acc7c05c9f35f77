"""The mock calls tools: given `tools` it calls one (the one `tool_choice` forces, else the
first) with arguments valid for that tool's JSON Schema, the same every time, in the
OpenAI and the Anthropic format, streamed and not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from interlock.core.mock_server import create_mock_app
from interlock.core.providers.mock_tools import example_value
from tests.core.test_openai_schemas import check_stream, conforms
from tests.support import run_gateway, serve_asgi

MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "when": {"type": "string", "format": "date"},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
SEARCH = {
    "type": "object",
    "$defs": {"filter": {"type": "object", "properties": {"tag": {"type": "string"}}}},
    "properties": {
        "query": {"type": "string", "maxLength": 3},
        "filters": {"type": "array", "items": {"$ref": "#/$defs/filter"}, "minItems": 2},
        "limit": {"anyOf": [{"type": "null"}, {"type": "integer", "exclusiveMinimum": 10}]},
    },
    "required": ["query", "filters"],
}
OPENAI_TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "search", "parameters": SEARCH}},
]
ANTHROPIC_TOOLS: Any = [
    {"name": "get_weather", "input_schema": WEATHER},
    {"name": "search", "input_schema": SEARCH},
]
ASK = [{"role": "user", "content": "weather in Zürich?"}]


def valid(arguments: Any, schema: dict[str, Any]) -> None:
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(arguments)


def sdk(gw: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw + "/v1", api_key="x", max_retries=0)


def claude(gw: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw, api_key="x", max_retries=0)


# -- OpenAI format ---------------------------------------------------------------------------
async def test_openai_tool_call_with_valid_arguments(tmp_path: Path) -> None:
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        body = {"model": "gpt-4o", "messages": ASK, "tools": OPENAI_TOOLS}
        first = (await client.post(f"{gw}/v1/chat/completions", json=body)).json()
        again = (await client.post(f"{gw}/v1/chat/completions", json=body)).json()
    conforms("CreateChatCompletionResponse", first)
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    valid(arguments, WEATHER)
    assert arguments == {"city": "example", "unit": "celsius", "days": 1, "when": "2025-01-01"}
    assert again["choices"] == first["choices"]  # deterministic
    assert first["usage"]["completion_tokens"] > 0


async def test_openai_streamed_tool_call(tmp_path: Path) -> None:
    async with run_gateway(MOCK + "chunks = 6\n", tmp_path) as gw:
        stream = await sdk(gw).chat.completions.create(
            model="gpt-4o",
            messages=ASK,
            tools=OPENAI_TOOLS,
            tool_choice={"type": "function", "function": {"name": "search"}},
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        async with httpx.AsyncClient() as client:
            raw = await client.post(
                f"{gw}/v1/chat/completions",
                json={"model": "gpt-4o", "messages": ASK, "tools": OPENAI_TOOLS, "stream": True},
            )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id and calls[0].function and calls[0].function.name == "search"
    fragments = [tc.function.arguments for tc in calls[1:] if tc.function]
    assert len(fragments) >= 5
    valid(json.loads("".join(fragments)), SEARCH)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    check_stream(raw)  # every chunk conforms to OpenAI's schema


@pytest.mark.parametrize(
    ("tool_choice", "messages", "called"),
    [
        ("required", ASK, "get_weather"),
        ({"type": "function", "function": {"name": "search"}}, ASK, "search"),
        ("none", ASK, None),
        ("auto", ASK, "get_weather"),
        # after a tool result the mock answers with text, so an agent loop ends...
        (
            "auto",
            [
                *ASK,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
            ],
            None,
        ),
        # ...unless a tool call is forced
        (
            "required",
            [*ASK, {"role": "tool", "tool_call_id": "call_1", "content": "18°C"}],
            "get_weather",
        ),
    ],
)
async def test_which_tool_is_called(
    tmp_path: Path, tool_choice: Any, messages: Any, called: str | None
) -> None:
    body = {"model": "m", "messages": messages, "tools": OPENAI_TOOLS, "tool_choice": tool_choice}
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        answer = (await client.post(f"{gw}/v1/chat/completions", json=body)).json()
    message = answer["choices"][0]["message"]
    if called is None:
        assert "tool_calls" not in message and message["content"]
    else:
        assert message["tool_calls"][0]["function"]["name"] == called


async def test_forcing_an_unknown_tool_is_a_400(tmp_path: Path) -> None:
    body = {
        "model": "m",
        "messages": ASK,
        "tools": OPENAI_TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "nope"}},
    }
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(f"{gw}/v1/chat/completions", json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "tool_choice"


# -- Anthropic format, through the existing translation -----------------------------------------
async def test_anthropic_tool_use(tmp_path: Path) -> None:
    async with run_gateway(MOCK, tmp_path) as gw:
        message = await claude(gw).messages.create(
            model="claude-sonnet-4-6", max_tokens=100, tools=ANTHROPIC_TOOLS, messages=ASK
        )
        forced = await claude(gw).messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            tools=ANTHROPIC_TOOLS,
            tool_choice={"type": "tool", "name": "search"},
            messages=ASK,
        )
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.id
    valid(block.input, WEATHER)
    assert forced.content[0].type == "tool_use" and forced.content[0].name == "search"
    valid(forced.content[0].input, SEARCH)


async def test_anthropic_streamed_tool_use(tmp_path: Path) -> None:
    async with run_gateway(MOCK, tmp_path) as gw:
        async with claude(gw).messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=100,
            tools=ANTHROPIC_TOOLS,
            tool_choice={"type": "any"},
            messages=ASK,
        ) as stream:
            events = [event async for event in stream]
            final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    [block] = final.content
    assert block.type == "tool_use" and block.name == "get_weather"
    valid(block.input, WEATHER)
    fragments = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(fragments) >= 5 and json.loads("".join(fragments)) == block.input


async def test_mock_upstream_server_calls_tools_too(tmp_path: Path) -> None:
    async with serve_asgi(create_mock_app()) as mock_url, httpx.AsyncClient() as client:
        answer = await client.post(
            f"{mock_url}/v1/chat/completions",
            json={"model": "m", "messages": ASK, "tools": OPENAI_TOOLS},
        )
    call = answer.json()["choices"][0]["message"]["tool_calls"][0]["function"]
    valid(json.loads(call["arguments"]), WEATHER)


# -- arguments valid for the schema ------------------------------------------------------------
@pytest.mark.parametrize(
    "schema",
    [
        WEATHER,
        SEARCH,
        {"type": "object"},
        {},
        {"type": "object", "properties": {"a": {"const": [1, {"b": None}]}}, "required": ["a"]},
        {"type": "object", "required": ["x"], "properties": {}},
        {
            "type": "object",
            "properties": {
                "n": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5},
                "i": {"type": "integer", "exclusiveMinimum": 3.5, "multipleOf": 5},
                "neg": {"type": "integer", "maximum": -10},
                "f": {"type": "number", "minimum": 2.5, "maximum": 2.5},
                "s": {"type": ["null", "string"], "minLength": 12},
                "t": {"type": "string", "maxLength": 0},
                "p": {"type": "string", "pattern": "^[0-9]+$"},
                "u": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "minItems": 3,
                    "uniqueItems": True,
                },
                "e": {
                    "type": "array",
                    "items": {"type": "string", "format": "email"},
                    "maxItems": 0,
                },
                "pre": {
                    "type": "array",
                    "prefixItems": [{"type": "boolean"}, {"type": "null"}],
                    "items": False,
                },
                "b": {
                    "type": "array",
                    "items": {"type": "boolean"},
                    "minItems": 2,
                    "uniqueItems": True,
                },
                "fmt": {
                    "type": "array",
                    "prefixItems": [
                        {"format": f}
                        # not "time": without rfc3339-validator, jsonschema checks draft 3's
                        # "HH:MM:SS" for it, while RFC 3339 (and the mock) add an offset
                        for f in ("date-time", "uuid", "ipv4", "ipv6", "uri", "hostname")
                    ],
                },
            },
        },
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"$ref": "#/definitions/b"}}, "required": ["b"]},
            ],
            "definitions": {
                "b": {"oneOf": [{"type": "string", "enum": ["x", "y"]}, {"type": "integer"}]}
            },
        },
        {  # a recursive schema stops at a depth limit instead of recursing forever
            "$defs": {
                "node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}
            },
            "$ref": "#/$defs/node",
        },
    ],
)
def test_example_arguments_are_valid(schema: dict[str, Any]) -> None:
    value = example_value(schema)
    assert isinstance(value, dict)
    if schema.get("$ref") == "#/$defs/node":
        return  # at the depth limit a child is null: valid JSON, not valid for the schema
    valid(value, schema)


scalar_schema = st.one_of(
    st.fixed_dictionaries({"type": st.just("string")}, optional={"minLength": st.integers(0, 20)}),
    st.fixed_dictionaries(
        {
            "type": st.just("string"),
            "format": st.sampled_from(["date", "date-time", "email", "uri", "uuid", "ipv4"]),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["integer", "number"])},
        optional={
            "minimum": st.integers(-100, 100),
            "exclusiveMaximum": st.integers(101, 200),
            "multipleOf": st.sampled_from([1, 2, 5, 7]),
        },
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["boolean", "null"])}),
    st.fixed_dictionaries(
        {"enum": st.lists(st.integers() | st.text(max_size=5), min_size=1, max_size=4)}
    ),
)
schemas = st.recursive(
    scalar_schema,
    lambda kids: (
        st.fixed_dictionaries(
            {
                "type": st.just("object"),
                "properties": st.dictionaries(st.text(min_size=1, max_size=6), kids, max_size=4),
            },
            optional={"additionalProperties": st.just(False)},
        ).flatmap(
            lambda obj: st.fixed_dictionaries(
                {
                    **{k: st.just(v) for k, v in obj.items()},
                    "required": st.lists(st.sampled_from(sorted(obj["properties"])), unique=True)
                    if obj["properties"]
                    else st.just([]),
                }
            )
        )
        | st.fixed_dictionaries(
            {"type": st.just("array"), "items": kids},
            optional={"minItems": st.integers(0, 4), "maxItems": st.integers(4, 6)},
        )
        | st.fixed_dictionaries({"anyOf": st.lists(kids, min_size=1, max_size=3)})
        | st.fixed_dictionaries(
            {
                "type": st.lists(
                    st.sampled_from(["string", "null"]), min_size=1, max_size=2, unique=True
                )
            }
        )
    ),
    max_leaves=10,
)


@settings(
    max_examples=150, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
@given(schema=schemas)
def test_generated_schemas_get_valid_arguments(schema: dict[str, Any]) -> None:
    valid(example_value(schema, index=0, depth=1), schema)
