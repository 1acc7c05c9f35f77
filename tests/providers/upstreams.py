"""Fake providers on loopback, each speaking one wire format, for the SDK tests.

Every kind answers the same conversation the same way: a request mentioning "weather"
gets a tool call, one mentioning "fail" gets that provider's own error body and status,
anything else gets text. Streams go out in 7-byte network chunks, so SSE events and
multi-byte UTF-8 characters are split everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from interlock.core.config import PriceOverride
from interlock.core.context import Usage
from interlock.core.pricing import Pricing
from tests.support import FakeUpstream, Recorded, Reply, run_gateway

TEXT = "Grüezi from Zürich ☀️"
ARGS = {"city": "Zürich", "unit": "celsius"}
RECORDER = Path(__file__).with_name("recorder_plugin.py")
UPSTREAM_KEY = "sk-upstream-secret-key-0123456789"


def _encode(doc: Any) -> bytes:
    return msgspec.json.encode(doc)


async def in_small_chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _event(name: str | None, doc: Any) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + _encode(doc) + b"\n\n"


@dataclass
class Kind:
    """One provider kind: its config, the path it is reached on, and its answers."""

    kind: str
    model: str
    usage: Usage  # what the fake reports, in our terms
    table: Callable[[str], str]
    answer: Callable[[Recorded, bool, bool], Reply]  # (request, stream, tool) -> reply
    error: Reply
    error_status: int  # what the caller should see
    is_stream: Callable[[Recorded], bool]

    def config(self, url: str, recorder: bool = True) -> str:
        plugin = f'\n[plugins.recorder]\npath = "{RECORDER}"\n' if recorder else ""
        return self.table(url) + plugin

    def install(self, fake: FakeUpstream, path: str) -> None:
        def handler(rec: Recorded) -> Reply:
            if b"fail" in rec.body:
                return self.error
            return self.answer(rec, self.is_stream(rec), b"weather" in rec.body)

        fake.on(path, handler)


# -- Anthropic -------------------------------------------------------------------------------
def _anthropic_answer(rec: Recorded, stream: bool, tool: bool) -> Reply:
    usage = {
        "input_tokens": 40,
        "output_tokens": 12,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 5,
    }
    if not stream:
        content: list[Any] = [{"type": "text", "text": TEXT}]
        if tool:
            content = [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": ARGS}]
        return Reply.json(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": content,
                "stop_reason": "tool_use" if tool else "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        )
    start_usage = {**usage, "output_tokens": 1}
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [_event("message_start", {"type": "message_start", "message": message})]
    events.append(_event("ping", {"type": "ping"}))
    if tool:
        block = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
        args = _encode(ARGS).decode()
        pieces = [args[i : i + 3] for i in range(0, len(args), 3)]
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in ("Grüezi ", "from Zürich", " ☀️")]
    events.append(
        _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
    )
    for delta in deltas:
        events.append(
            _event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        )
    events.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    stop = {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None}
    events.append(
        _event(
            "message_delta",
            {"type": "message_delta", "delta": stop, "usage": {"output_tokens": 12}},
        )
    )
    events.append(_event("message_stop", {"type": "message_stop"}))
    return Reply.sse(in_small_chunks(b"".join(events)))


ANTHROPIC = Kind(
    kind="anthropic",
    model="claude-sonnet-4-6",
    usage=Usage(prompt_tokens=75, completion_tokens=12, cached_tokens=30, cache_write_tokens=5),
    table=lambda url: (
        f"""
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{url}/v1"
api_key = "{UPSTREAM_KEY}"
models = ["claude-sonnet-4-6"]
"""
    ),
    answer=_anthropic_answer,
    error=Reply.json(
        {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "Number of requests exceeded"},
        },
        429,
        {"retry-after": "7"},
    ),
    error_status=429,
    is_stream=lambda rec: bool(rec.json().get("stream")),
)


# -- Gemini ------------------------------------------------------------------------------------
def _gemini_answer(rec: Recorded, stream: bool, tool: bool) -> Reply:
    final_usage = {
        "promptTokenCount": 50,
        "candidatesTokenCount": 9,
        "thoughtsTokenCount": 3,
        "cachedContentTokenCount": 20,
        "totalTokenCount": 62,
    }
    if tool:
        parts = [[{"functionCall": {"name": "get_weather", "args": ARGS}}]]
    else:
        parts = [[{"text": "Grüezi "}], [{"text": "from Zürich"}], [{"text": " ☀️"}]]
    docs = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        candidate: dict[str, Any] = {"content": {"parts": part, "role": "model"}, "index": 0}
        if last:
            candidate["finishReason"] = "STOP"
        docs.append(
            {
                "candidates": [candidate],
                "usageMetadata": final_usage if last else {"promptTokenCount": 50},
                "modelVersion": "gemini-2.5-flash",
                "responseId": "resp-1",
            }
        )
    if not stream:
        merged = [p for part in parts for p in part]
        if not tool:
            merged = [{"text": TEXT}]
        doc = docs[-1]
        doc["candidates"][0]["content"]["parts"] = merged
        return Reply.json(doc)
    return Reply.sse(in_small_chunks(b"".join(_event(None, d) for d in docs)))


GEMINI = Kind(
    kind="gemini",
    model="gemini-2.5-flash",
    usage=Usage(prompt_tokens=50, completion_tokens=12, cached_tokens=20),
    table=lambda url: (
        f"""
[[providers]]
name = "gemini"
kind = "gemini"
base_url = "{url}/v1beta"
api_key = "{UPSTREAM_KEY}"
models = ["gemini-2.5-flash"]
"""
    ),
    answer=_gemini_answer,
    error=Reply.json(
        {
            "error": {
                "code": 400,
                "message": "Invalid value at 'contents[0].parts'",
                "status": "INVALID_ARGUMENT",
            }
        },
        400,
    ),
    error_status=400,
    is_stream=lambda rec: rec.path.endswith(":streamGenerateContent"),
)


# -- OpenAI-format (Azure, openai-compatible) --------------------------------------------------
def _openai_answer(rec: Recorded, stream: bool, tool: bool) -> Reply:
    usage = {
        "prompt_tokens": 21,
        "completion_tokens": 8,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": _encode(ARGS).decode()},
    }
    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": None if tool else TEXT}
        if tool:
            message["tool_calls"] = [call]
        return Reply.json(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "x",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if tool else "stop",
                    }
                ],
                "usage": usage,
            }
        )
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "x"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _event(None, {**base, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": ""})]
    if tool:
        args = call["function"]["arguments"]  # type: ignore[index]
        first = {"index": 0, "id": "call_1", "type": "function"}
        events.append(
            chunk({"tool_calls": [{**first, "function": {"name": "get_weather", "arguments": ""}}]})
        )
        for i in range(0, len(args), 4):
            piece = {"index": 0, "function": {"arguments": args[i : i + 4]}}
            events.append(chunk({"tool_calls": [piece]}))
        events.append(chunk({}, "tool_calls"))
    else:
        for piece in ("Grüezi ", "from Zürich", " ☀️"):
            events.append(chunk({"content": piece}))
        events.append(chunk({}, "stop"))
    events.append(_event(None, {**base, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return Reply.sse(in_small_chunks(b"".join(events)))


AZURE = Kind(
    kind="azure",
    model="gpt-4o",
    usage=Usage(prompt_tokens=21, completion_tokens=8, cached_tokens=4),
    table=lambda url: (
        f"""
[[providers]]
name = "azure"
kind = "azure"
base_url = "{url}"
api_key = "{UPSTREAM_KEY}"
api_version = "2024-10-21"
models = ["gpt-4o"]
model_map = {{ "gpt-4o" = "gpt4o-prod" }}
"""
    ),
    answer=_openai_answer,
    error=Reply.json(
        {"error": {"code": "429", "message": "Requests have exceeded call rate limit"}},
        429,
        {"retry-after": "3"},
    ),
    error_status=429,
    is_stream=lambda rec: bool(rec.json().get("stream")),
)

COMPATIBLE = Kind(
    kind="openai-compatible",
    model="llama3",
    usage=Usage(prompt_tokens=21, completion_tokens=8, cached_tokens=4),
    table=lambda url: (
        f"""
[[providers]]
name = "groq"
kind = "openai-compatible"
base_url = "{url}/openai/v1"
models = ["llama3"]
model_map = {{ "llama3" = "llama-3.3-70b-versatile" }}
headers = {{ "x-team" = "search" }}

[pricing.llama3]
input = 0.59
output = 0.79
"""
    ),
    answer=_openai_answer,
    error=Reply.json({"error": {"message": "model is overloaded", "type": "server_error"}}, 503),
    error_status=503,
    is_stream=lambda rec: bool(rec.json().get("stream")),
)

PRICING = Pricing({"llama3": PriceOverride(input=0.59, output=0.79)})

PATHS = {
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:generateContent",
    "azure": "/openai/deployments/gpt4o-prod/chat/completions",
    "openai-compatible": "/openai/v1/chat/completions",
}
KINDS = [ANTHROPIC, GEMINI, AZURE, COMPATIBLE]


@contextlib.asynccontextmanager
async def serving(
    kind: Kind, upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> AsyncIterator[str]:
    """The gateway in front of `upstream` scripted as `kind`; yields the gateway's URL."""
    fake, url = upstream
    install(kind, fake)
    async with run_gateway(kind.config(url), tmp_path) as gw:
        yield gw


def install(kind: Kind, fake: FakeUpstream) -> None:
    kind.install(fake, PATHS[kind.kind])
    if kind.kind == "gemini":
        kind.install(fake, "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
