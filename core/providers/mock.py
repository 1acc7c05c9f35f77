"""A built-in fake LLM: deterministic text derived from the prompt, realistic usage,
SSE streaming, tool calls when tools are given (`mock_tools`), and configurable latency,
pacing and failure rate.

It lets `interlock serve` answer with no provider keys, and gives tests and benchmarks an
upstream that costs nothing. The same generator backs `interlock mock-upstream`, the
mock as a standalone OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec

from ..context import RequestContext, Usage
from ..errors import UpstreamError
from ..sse import DONE, format_event
from .base import Provider, ProviderReply, estimate_tokens
from .canonical import ToolCall, is_text_part
from .mock_tools import mock_tool_call

__all__ = [
    "MockOptions",
    "MockProvider",
    "mock_call",
    "mock_chunks",
    "mock_completion",
    "mock_embeddings",
]


_WORDS = (
    "the",
    "gateway",
    "routes",
    "each",
    "request",
    "to",
    "a",
    "provider",
    "that",
    "serves",
    "its",
    "model",
    "while",
    "budgets",
    "hold",
    "and",
    "audit",
    "records",
    "every",
    "call",
    "so",
    "teams",
    "can",
    "see",
    "what",
    "they",
    "spend",
    "and",
    "why",
    "latency",
    "stays",
    "low",
    "when",
    "streams",
    "pass",
    "through",
    "untouched",
    "chunk",
    "by",
    "chunk",
    "from",
    "upstream",
    "to",
    "client",
)

_encode = msgspec.json.Encoder().encode


class MockOptions(msgspec.Struct, forbid_unknown_fields=True):
    latency_ms: float = 0.0  # before the first byte
    chunk_delay_ms: float = 0.0  # between streamed chunks
    failure_rate: float = 0.0  # 0..1: answer 503 this often
    words: int = 24  # length of every answer
    chunks: int = 8  # streamed content chunks (at least 5)
    seed: int = 0  # for the failure draw; the text depends on the prompt only


def prompt_text(messages: list[Any]) -> str:
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p["text"] for p in content if isinstance(p, dict) and is_text_part(p))
    return "\n".join(parts)


def count_tokens(text: str) -> int:
    """About four characters a token, the gateway's one estimate (`estimate_tokens`)."""
    return estimate_tokens(text)


def _answer_words(prompt: str, words: int) -> list[str]:
    rng = random.Random(zlib.crc32(prompt.encode("utf-8")))
    return [rng.choice(_WORDS) for _ in range(max(1, words))]


def _ids(prompt: str) -> tuple[str, int]:
    return f"chatcmpl-mock{zlib.crc32(prompt.encode('utf-8')):08x}", int(time.time())


def mock_call(payload: dict[str, Any]) -> ToolCall | None:
    """The tool call the mock answers this request with, if any (`mock_tools`)."""
    messages = payload.get("messages")
    prompt = prompt_text(messages if isinstance(messages, list) else [])
    return mock_tool_call(payload, f"call_mock{zlib.crc32(prompt.encode('utf-8')):08x}")


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def mock_completion(
    model: str, messages: list[Any], options: MockOptions, call: ToolCall | None = None
) -> tuple[dict[str, Any], Usage]:
    prompt = prompt_text(messages)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if call is None:
        words = _answer_words(prompt, options.words)
        message["content"] = " ".join(words)
        completion_tokens = len(words)
    else:
        message["tool_calls"] = [_call_json(call)]
        completion_tokens = count_tokens(call.name + call.arguments)
    usage = Usage(prompt_tokens=count_tokens(prompt), completion_tokens=completion_tokens)
    ident, created = _ids(prompt)
    body = {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "stop" if call is None else "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
    return body, usage


def _pieces(items: list[str], n: int, sep: str) -> list[str]:
    """`items` joined into `n` pieces (empty ones at the end when there are fewer)."""
    size = max(1, -(-len(items) // n))
    pieces = [sep.join(items[i : i + size]) for i in range(0, len(items), size)]
    return pieces + [""] * (n - len(pieces))


def mock_chunks(
    model: str,
    messages: list[Any],
    options: MockOptions,
    include_usage: bool,
    call: ToolCall | None = None,
) -> tuple[Iterator[bytes], Usage]:
    """SSE events of a streamed answer: role, at least five content chunks (or a tool
    call: its id and name, then its arguments in at least five fragments), finish, usage
    (when asked), [DONE]."""
    prompt = prompt_text(messages)
    n = max(5, options.chunks)
    if call is None:
        words = _answer_words(prompt, options.words)
        pieces = _pieces(words, n, " ")
        completion_tokens = len(words)
    else:
        pieces = [p for p in _pieces(list(call.arguments), n, "") if p]
        completion_tokens = count_tokens(call.name + call.arguments)
    usage = Usage(prompt_tokens=count_tokens(prompt), completion_tokens=completion_tokens)
    ident, created = _ids(prompt)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        doc: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if include_usage:
            doc["usage"] = None
        return format_event(_encode(doc))

    def text_events() -> Iterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        for i, piece in enumerate(pieces):
            yield chunk({"content": piece if i == 0 else " " + piece if piece else ""})
        yield chunk({}, "stop")

    def call_events(call: ToolCall) -> Iterator[bytes]:
        start = {**_call_json(call), "index": 0}
        start["function"] = {"name": call.name, "arguments": ""}
        yield chunk({"role": "assistant", "content": None, "tool_calls": [start]})
        for piece in pieces:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")

    def events() -> Iterator[bytes]:
        yield from text_events() if call is None else call_events(call)
        if include_usage:
            doc = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            }
            yield format_event(_encode(doc))
        yield DONE

    return events(), usage


def mock_embeddings(model: str, inputs: Any, dims: int = 16) -> tuple[dict[str, Any], Usage]:
    items = inputs if isinstance(inputs, list) else [inputs]
    data = []
    tokens = 0
    for i, item in enumerate(items):
        text = item if isinstance(item, str) else str(item)
        tokens += count_tokens(text)
        rng = random.Random(zlib.crc32(text.encode("utf-8")))
        data.append(
            {
                "object": "embedding",
                "index": i,
                "embedding": [round(rng.uniform(-1, 1), 6) for _ in range(dims)],
            }
        )
    usage = Usage(prompt_tokens=tokens)
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body, usage


class MockProvider(Provider):
    """The mock inside the gateway process: no network, no key."""

    kind = "mock"
    Options = MockOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rng = random.Random(self.options.seed)

    async def _delay_or_fail(self) -> None:
        options: MockOptions = self.options
        if options.latency_ms > 0:
            await asyncio.sleep(options.latency_ms / 1000)
        if options.failure_rate > 0 and self._rng.random() < options.failure_rate:
            raise UpstreamError(
                503,
                "overloaded_error",
                f"provider '{self.name}' is overloaded: mock failure",
                retryable=True,
                upstream_status=503,
            )

    async def chat(self, ctx: RequestContext, model: str) -> ProviderReply:
        await self._delay_or_fail()
        payload = ctx.payload()
        body, ctx.usage = mock_completion(
            model, payload["messages"], self.options, mock_call(payload)
        )
        return ProviderReply(_encode(body))

    async def chat_stream(self, ctx: RequestContext, model: str) -> AsyncIterator[bytes]:
        await self._delay_or_fail()
        payload = ctx.payload()
        events, usage = mock_chunks(
            model, payload["messages"], self.options, ctx.include_usage, mock_call(payload)
        )
        ctx.usage = usage
        return self._paced(events)

    async def _paced(self, events: Iterator[bytes]) -> AsyncIterator[bytes]:
        delay = self.options.chunk_delay_ms / 1000
        for i, event in enumerate(events):
            if delay and i:
                await asyncio.sleep(delay)
            yield event

    async def embeddings(self, ctx: RequestContext, model: str) -> ProviderReply:
        await self._delay_or_fail()
        body, ctx.usage = mock_embeddings(model, ctx.payload().get("input"))
        return ProviderReply(_encode(body))
