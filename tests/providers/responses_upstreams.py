"""Fake upstreams for `/v1/responses` tests: every provider kind, scripted alike.

The translating kinds (anthropic, gemini, openai-compatible) are the ones of
upstreams.py; `openai` and `azure` speak the Responses API natively here, answering a
Response object or its event stream (7-byte network chunks) with usage that has cached
and reasoning tokens. A request mentioning "weather" gets a tool call, unless it already
carries the tool's result ("sunny"); one mentioning "fail" gets the provider's error.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from interlock.core.context import Usage
from tests.providers.upstreams import (
    ANTHROPIC,
    ARGS,
    AZURE,
    COMPATIBLE,
    GEMINI,
    TEXT,
    UPSTREAM_KEY,
    Kind,
    in_small_chunks,
)
from tests.support import FakeUpstream, Recorded, Reply, run_gateway

__all__ = [
    "KINDS",
    "NATIVE",
    "OPENAI",
    "TOOL_RESULT",
    "TRANSLATED",
    "native_events",
    "serving",
]

TOOL_RESULT = "sunny, 21°C"
NATIVE_USAGE = {
    "input_tokens": 30,
    "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0},
    "output_tokens": 9,
    "output_tokens_details": {"reasoning_tokens": 4},
    "total_tokens": 39,
}


def _event(doc: dict[str, Any]) -> bytes:
    return f"event: {doc['type']}\ndata: ".encode() + msgspec.json.encode(doc) + b"\n\n"


def native_response(model: str, tool: bool, status: str = "completed") -> dict[str, Any]:
    if tool:
        item: dict[str, Any] = {
            "type": "function_call",
            "id": "fc_native1",
            "status": "completed",
            "call_id": "call_native1",
            "name": "get_weather",
            "arguments": msgspec.json.encode(ARGS).decode(),
        }
    else:
        part = {"type": "output_text", "text": TEXT, "annotations": [], "logprobs": []}
        item = {
            "type": "message",
            "id": "msg_native1",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
    return {
        "id": "resp_native0123456789abcdef",
        "object": "response",
        "created_at": 1741290958,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": model,
        "output": [item] if status == "completed" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": NATIVE_USAGE if status == "completed" else None,
        "metadata": {},
    }


def native_events(model: str, tool: bool) -> list[bytes]:
    """The stream OpenAI sends for `native_response(model, tool)`, event by event."""
    final = native_response(model, tool)
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    item = final["output"][0]
    docs: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    opened = {**item, "status": "in_progress"}
    if tool:
        opened["arguments"] = ""
        docs.append({"type": "response.output_item.added", "output_index": 0, "item": opened})
        args = item["arguments"]
        for i in range(0, len(args), 5):
            delta = {"item_id": item["id"], "output_index": 0, "delta": args[i : i + 5]}
            docs.append({"type": "response.function_call_arguments.delta", **delta})
        done = {"item_id": item["id"], "output_index": 0, "name": "get_weather", "arguments": args}
        docs.append({"type": "response.function_call_arguments.done", **done})
    else:
        opened["content"] = []
        docs.append({"type": "response.output_item.added", "output_index": 0, "item": opened})
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        docs.append({"type": "response.content_part.added", **where, "part": part})
        for piece in ("Grüezi ", "from Zürich", " ☀️"):
            delta = {**where, "delta": piece, "logprobs": []}
            docs.append({"type": "response.output_text.delta", **delta})
        done = {**where, "text": TEXT, "logprobs": []}
        docs.append({"type": "response.output_text.done", **done})
        docs.append({"type": "response.content_part.done", **where, "part": item["content"][0]})
    docs.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    docs.append({"type": "response.completed", "response": final})
    return [_event({**doc, "sequence_number": i}) for i, doc in enumerate(docs)]


def _native_answer(rec: Recorded, stream: bool, tool: bool) -> Reply:
    model = rec.json()["model"]
    if not stream:
        return Reply.json(native_response(model, tool))
    return Reply.sse(in_small_chunks(b"".join(native_events(model, tool))))


_NATIVE_ERROR = Reply.json(
    {
        "error": {
            "message": "Rate limit reached for gpt-4o",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    },
    429,
    {"retry-after": "2"},
)
_NATIVE_USAGE = Usage(prompt_tokens=30, completion_tokens=9, cached_tokens=10, reasoning_tokens=4)

OPENAI = Kind(
    kind="openai",
    model="gpt-4o",
    usage=_NATIVE_USAGE,
    table=lambda url: (
        f"""
[[providers]]
name = "openai"
kind = "openai"
base_url = "{url}/v1"
api_key = "{UPSTREAM_KEY}"
models = ["gpt-4o"]
"""
    ),
    answer=_native_answer,
    error=_NATIVE_ERROR,
    error_status=429,
    is_stream=lambda rec: bool(rec.json().get("stream")),
)
AZURE_RESPONSES = Kind(
    kind="azure",
    model="gpt-4o",
    usage=_NATIVE_USAGE,
    table=AZURE.table,  # model_map: gpt-4o is the deployment gpt4o-prod
    answer=_native_answer,
    error=_NATIVE_ERROR,
    error_status=429,
    is_stream=lambda rec: bool(rec.json().get("stream")),
)

PATHS: dict[str, list[str]] = {
    "anthropic": ["/v1/messages"],
    "gemini": [
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    ],
    "openai-compatible": ["/openai/v1/chat/completions"],
    "openai": ["/v1/responses"],
    "azure": ["/openai/v1/responses"],
}
TRANSLATED = [ANTHROPIC, GEMINI, COMPATIBLE]
NATIVE = [OPENAI, AZURE_RESPONSES]
KINDS = TRANSLATED + NATIVE


def install(kind: Kind, fake: FakeUpstream) -> None:
    def handler(rec: Recorded) -> Reply:
        if b"fail" in rec.body:
            return kind.error
        tool = b"weather" in rec.body and TOOL_RESULT.encode() not in rec.body
        return kind.answer(rec, kind.is_stream(rec), tool)

    for path in PATHS[kind.kind]:
        fake.on(path, handler)


@contextlib.asynccontextmanager
async def serving(
    kind: Kind, upstream: tuple[FakeUpstream, str], tmp_path: Path, extra: str = ""
) -> AsyncIterator[str]:
    """The gateway in front of `upstream` scripted as `kind`; yields the gateway's URL."""
    fake, url = upstream
    install(kind, fake)
    async with run_gateway(kind.config(url) + extra, tmp_path) as gw:
        yield gw
