"""Every OpenAI-format answer the gateway itself writes conforms to OpenAI's published
schemas (tests/schemas/openai, copied from openai/openai-openapi), so typed clients in
other languages that decode against them accept it: the mock's answers, answers
translated from each provider, streamed chunks, embeddings, the model list and errors.
(An OpenAI-format upstream's own bytes pass through untouched and are not ours to check.)
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.core.test_proxy_openai import config
from tests.providers.upstreams import ANTHROPIC, GEMINI, Kind, install
from tests.support import Reply, run_gateway

SCHEMAS = Path(__file__).parents[1] / "schemas" / "openai"
MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'
HI = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def _openapi_nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` (still in a few 3.1 schemas) as JSON Schema's
    "or null", which is what OpenAPI means by it (see the README)."""
    if isinstance(node, list):
        return [_openapi_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _openapi_nullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


@cache
def _registry() -> Registry:
    schemas = {p.stem: json.loads(p.read_text()) for p in SCHEMAS.glob("*.json")}
    root = {"components": {"schemas": _openapi_nullable(schemas)}}
    resource = Resource.from_contents(root, default_specification=DRAFT202012)
    return Registry().with_resource("urn:openai", resource)


def problems(name: str, doc: Any) -> list[str]:
    validator = Draft202012Validator(
        {"$ref": f"urn:openai#/components/schemas/{name}"}, registry=_registry()
    )
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def conforms(name: str, doc: Any) -> None:
    found = problems(name, doc)
    assert not found, f"{name}:\n" + "\n".join(found) + f"\n{json.dumps(doc)[:2000]}"


def stream_docs(body: bytes) -> list[Any]:
    """The JSON documents of an OpenAI-format SSE stream (the final [DONE] left out)."""
    docs = []
    for event in body.split(b"\n\n"):
        for line in event.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                docs.append(json.loads(line[6:]))
    return docs


def check_stream(resp: httpx.Response) -> list[Any]:
    assert resp.status_code == 200, resp.text
    docs = stream_docs(resp.content)
    assert docs
    for doc in docs:
        conforms("CreateChatCompletionStreamResponse", doc)
    return docs


def check_error(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    conforms("ErrorResponse", resp.json())


# -- the check itself can fail -------------------------------------------------------------
def test_the_schemas_refuse_what_strict_clients_refuse() -> None:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
    }
    conforms("CreateChatCompletionResponse", answer)
    del answer["choices"][0]["message"]["refusal"]  # type: ignore[index, attr-defined]
    assert problems("CreateChatCompletionResponse", answer) == [
        "choices/0/message: 'refusal' is a required property"
    ]
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    conforms(
        "CreateChatCompletionStreamResponse",
        {
            **chunk,
            "choices": [
                {"index": 0, "delta": {"content": "x"}, "finish_reason": None, "logprobs": None}
            ],
            "usage": None,
        },
    )
    assert problems(
        "CreateChatCompletionStreamResponse",
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "done"}]},
    )
    assert problems("ErrorResponse", {"error": {"message": "m", "type": "t"}})


# -- the mock --------------------------------------------------------------------------------
async def test_mock_answers_conform(client: httpx.AsyncClient, tmp_path: Path) -> None:
    async with run_gateway(MOCK, tmp_path) as gw:
        chat = await client.post(f"{gw}/v1/chat/completions", json={"model": "m", "messages": HI})
        plain = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "m", "messages": HI, "stream": True}
        )
        usage = await client.post(
            f"{gw}/v1/chat/completions",
            json={
                "model": "m",
                "messages": HI,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        embeddings = await client.post(
            f"{gw}/v1/embeddings", json={"model": "e", "input": ["a", "b"]}
        )
        models = await client.get(f"{gw}/v1/models")
    conforms("CreateChatCompletionResponse", chat.json())
    check_stream(plain)
    assert check_stream(usage)[-1]["usage"]["total_tokens"] > 0
    conforms("CreateEmbeddingResponse", embeddings.json())
    conforms("ListModelsResponse", models.json())


async def test_listed_models_conform(client: httpx.AsyncClient, tmp_path: Path) -> None:
    toml = MOCK.replace('["*"]', '["gpt-4o", "claude-sonnet-4-6"]')
    async with run_gateway(toml, tmp_path) as gw:
        models = (await client.get(f"{gw}/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["gpt-4o", "claude-sonnet-4-6"]
    conforms("ListModelsResponse", models)


# -- translated from each provider -----------------------------------------------------------
@pytest.mark.parametrize("kind", [ANTHROPIC, GEMINI], ids=["anthropic", "gemini"])
async def test_translated_answers_conform(
    kind: Kind, upstream, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = upstream
    install(kind, fake)
    weather = [{"role": "user", "content": "weather in Zürich?"}]
    async with run_gateway(kind.config(url, recorder=False), tmp_path) as gw:
        post = lambda body: client.post(f"{gw}/v1/chat/completions", json=body)  # noqa: E731
        text = await post({"model": kind.model, "messages": HI})
        tool = await post({"model": kind.model, "messages": weather, "tools": TOOLS})
        streamed = await post(
            {
                "model": kind.model,
                "messages": HI,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        streamed_tool = await post(
            {"model": kind.model, "messages": weather, "tools": TOOLS, "stream": True}
        )
    conforms("CreateChatCompletionResponse", text.json())
    conforms("CreateChatCompletionResponse", tool.json())
    assert tool.json()["choices"][0]["message"]["tool_calls"]
    assert check_stream(streamed)[-1]["usage"]["prompt_tokens"] == kind.usage.prompt_tokens
    deltas = [d["choices"][0]["delta"] for d in check_stream(streamed_tool) if d["choices"]]
    assert any(d.get("tool_calls") for d in deltas)


@pytest.mark.parametrize("encoding", ["float", None])
async def test_translated_embeddings_conform(
    encoding: str | None, upstream, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on(
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        lambda r: Reply.json({"embeddings": [{"values": [0.25, -0.5]}, {"values": [1.0, 0.0]}]}),
    )
    toml = GEMINI.config(url, recorder=False).replace(
        '"gemini-2.5-flash"]', '"gemini-2.5-flash", "text-embedding-004"]'
    )
    body: dict[str, Any] = {"model": "text-embedding-004", "input": ["a", "b"]}
    if encoding:
        body["encoding_format"] = encoding
    async with run_gateway(toml, tmp_path) as gw:
        resp = await client.post(f"{gw}/v1/embeddings", json=body)
    doc = resp.json()
    if encoding is None:
        # Without `encoding_format` the answer is floats too (base64 only when asked,
        # which the schema does not describe: it is a string there, as at OpenAI).
        assert doc["data"][0]["embedding"] == [0.25, -0.5]
    conforms("CreateEmbeddingResponse", doc)


# -- errors ------------------------------------------------------------------------------------
async def test_error_bodies_conform(upstream, client: httpx.AsyncClient, tmp_path: Path) -> None:
    fake, url = upstream
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        fake.on(
            path, lambda r: Reply.json({"error": {"message": "slow down", "type": "requests"}}, 429)
        )
    toml = config(url, server="max_body_bytes = 2048")
    async with run_gateway(toml, tmp_path) as gw:
        chat = f"{gw}/v1/chat/completions"
        check_error(await client.post(chat, content=b"{"), 400)
        check_error(await client.post(chat, json={"model": "gpt-4o", "messages": []}), 400)
        check_error(await client.post(chat, json={"model": "nope", "messages": HI}), 404)
        check_error(await client.post(chat, json={"model": "gpt-4o", "messages": HI}), 429)
        big = [{"role": "user", "content": "x" * 5000}]
        check_error(await client.post(chat, json={"model": "gpt-4o", "messages": big}), 413)
        check_error(await client.get(chat), 405)
        check_error(await client.get(f"{gw}/v2/nothing"), 404)
        check_error(
            await client.post(f"{gw}/v1/embeddings", json={"model": "gpt-4o", "input": 1}), 429
        )


async def test_a_failed_stream_ends_with_an_error_event_that_conforms(
    upstream, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fake, url = upstream
    events = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6",'
        b'"usage":{"input_tokens":9,"output_tokens":1}}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    fake.on("/v1/messages", lambda r: Reply(200, events, {"content-type": "text/event-stream"}))
    async with run_gateway(ANTHROPIC.config(url, recorder=False), tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions",
            json={"model": "claude-sonnet-4-6", "messages": HI, "stream": True},
        )
    docs = stream_docs(resp.content)
    for doc in docs[:-1]:
        conforms("CreateChatCompletionStreamResponse", doc)
    conforms("ErrorResponse", docs[-1])


async def test_a_ready_answer_replayed_as_a_stream_conforms(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A `pre_forward` plugin's complete answer (a cache hit) streamed: the chunks are the
    gateway's own."""
    from tests.core.test_hooks import plugin_file

    cache = """
    @hookimpl
    def pre_forward(self, ctx):
        import msgspec
        doc = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "cached",
                            "refusal": None}, "finish_reason": "stop", "logprobs": None}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        ctx.response = ReadyResponse(msgspec.json.encode(doc))
    """
    async with run_gateway(MOCK + plugin_file(tmp_path, "cache", cache), tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions",
            json={
                "model": "m",
                "messages": HI,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
    docs = check_stream(resp)
    assert docs[0]["choices"][0]["delta"]["content"] == "cached"
    assert docs[-1]["usage"]["total_tokens"] == 2
