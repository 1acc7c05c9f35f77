"""OpenAI's Responses API spoken natively (`POST {base}/responses`): usage, relayed events.

When a `/v1/responses` request is served by an `openai` or `azure` provider, nothing is
translated: the client's bytes go upstream (the model name aside) and the provider's
answer and events come back untouched. This module only reads them on the way: usage
(input, cached, cache-write, output and reasoning tokens) from the answer's `usage` or
from the terminal event (`response.completed`, `response.incomplete`, `response.failed`),
decoding nothing else. A stream that fails upstream (`response.failed`, `error`) has
already told the client in OpenAI's own words, so it is recorded, not repeated; one that
stops before a terminal event gets an `error` event numbered after the last one relayed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import msgspec

from ..context import RequestContext, Usage
from ..errors import GatewayError, ReportedInStream, scrub
from ..sse import EventSplitter, format_event, parse_event
from .base import cut_off_usage
from .canonical import ended_early

__all__ = ["read_usage", "relay", "responses_usage"]

_encode = msgspec.json.Encoder().encode


class _InputDetails(msgspec.Struct):
    cached_tokens: int | None = 0
    cache_write_tokens: int | None = 0


class _OutputDetails(msgspec.Struct):
    reasoning_tokens: int | None = 0


class _Usage(msgspec.Struct):
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _Error(msgspec.Struct):
    code: str | None = None
    message: str | None = None


class _Object(msgspec.Struct):
    usage: _Usage | None = None
    error: _Error | None = None


class _Event(msgspec.Struct):
    type: str = ""
    response: _Object | None = None
    code: str | None = None  # an `error` event's own fields
    message: str | None = None


_decode_object = msgspec.json.Decoder(_Object).decode
_decode_event = msgspec.json.Decoder(_Event).decode
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
_TYPE = re.compile(rb'"type"\s*:\s*"([^"]+)"')


def responses_usage(u: _Usage) -> Usage:
    """The Responses API's usage as ours: `input_tokens` already counts cached tokens,
    `output_tokens` already counts reasoning tokens."""
    inputs = u.input_tokens_details
    outputs = u.output_tokens_details
    return Usage(
        prompt_tokens=u.input_tokens or 0,
        completion_tokens=u.output_tokens or 0,
        cached_tokens=(inputs.cached_tokens or 0) if inputs else 0,
        cache_write_tokens=(inputs.cache_write_tokens or 0) if inputs else 0,
        reasoning_tokens=(outputs.reasoning_tokens or 0) if outputs else 0,
    )


def read_usage(ctx: RequestContext, body: bytes) -> None:
    """`ctx.usage` from a whole Response object; only its `usage` is decoded."""
    try:
        usage = _decode_object(body).usage
    except msgspec.DecodeError:
        return
    if usage is not None:
        ctx.usage = responses_usage(usage)


def _kind(event: bytes) -> str | None:
    """The event's type, from its `event:` line (OpenAI sends one) or its data."""
    if event.startswith(b"event:"):
        line = event[6 : event.find(b"\n")]
        return line.strip().decode("utf-8", "replace")
    found = _TYPE.search(event, 0, 120)
    return found.group(1).decode("utf-8", "replace") if found else None


def _failure(parsed: _Event) -> GatewayError:
    error = parsed.response.error if parsed.response and parsed.response.error else None
    code = (error.code if error else parsed.code) or "server_error"
    message = (error.message if error else parsed.message) or "the response failed"
    status = 429 if code == "rate_limit_exceeded" else 502
    kind = "rate_limit_error" if status == 429 else "upstream_error"
    return ReportedInStream(status, kind, f"the provider failed mid-stream: {scrub(message, [])}")


async def relay(
    ctx: RequestContext, chunks: AsyncIterator[bytes], provider: str
) -> AsyncIterator[bytes]:
    """The provider's events as they arrive, whole events per network chunk (so
    `wrap_stream` sees whole events), usage read from the terminal event."""
    splitter = EventSplitter()
    usage: Usage | None = None
    failure: GatewayError | None = None
    done = False
    relayed = 0
    try:
        async for chunk in chunks:
            events = splitter.feed(chunk)
            if not events:
                continue
            for event in events:
                if _kind(event) in _TERMINAL:
                    done = True
                    try:
                        parsed = _decode_event(parse_event(event)[1])
                    except msgspec.DecodeError:
                        continue
                    if parsed.response is not None and parsed.response.usage is not None:
                        usage = ctx.usage = responses_usage(parsed.response.usage)
                    if parsed.type in ("response.failed", "error"):
                        failure = _failure(parsed)
            relayed += len(events)
            yield events[0] if len(events) == 1 else b"".join(events)
        rest = splitter.rest()
        if rest.strip():
            relayed += 1
            yield rest + b"\n\n"
        if failure is not None:
            raise failure
        if not done:
            cut = ended_early(provider)
            if not relayed:
                raise cut  # nothing reached the client: the next candidate may serve it
            doc = {
                "type": "error",
                "code": "server_error",
                "message": cut.message,
                "param": None,
                "sequence_number": relayed,
            }
            yield format_event(_encode(doc), "error")
            raise ReportedInStream.of(cut)
    finally:
        if usage is None:
            ctx.usage = cut_off_usage(ctx, None, relayed)
