"""Anthropic Messages API (`POST {base_url}/messages`), translated to and from canonical.

The request is built by `anthropic_translate`; this module reads Anthropic's answers
(typed msgspec Structs) and its SSE events, and emits canonical chunks as the events
arrive: text deltas, tool calls with their `input_json_delta` argument fragments, the
finish reason, and usage from `message_start` / `message_delta`. An `error` event inside
the stream raises `UpstreamError`, so the core can fail over (before the first event)
or tell the client (after it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import msgspec

from ..context import RequestContext, Usage
from ..errors import UpstreamError, upstream_error
from ..sse import DONE, EventSplitter, parse_event, sse_data
from .anthropic_translate import FINISH_REASONS, STATUS_BY_ERROR_TYPE, anthropic_request
from .base import HttpProvider, cut_off_usage
from .canonical import ChunkWriter, ToolCall, completion_body, ended_early

__all__ = ["AnthropicOptions", "AnthropicProvider", "anthropic_usage"]

_encode = msgspec.json.Encoder().encode


class AnthropicOptions(msgspec.Struct, forbid_unknown_fields=True):
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = 4096  # Anthropic requires max_tokens; OpenAI callers may omit it
    beta: list[str] = []  # `anthropic-beta` feature flags


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw(b"{}")


class _Message(msgspec.Struct):
    id: str = ""
    model: str = ""
    content: list[_Block] = []
    stop_reason: str | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None


class _ErrorInfo(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _Event(msgspec.Struct):
    type: str
    message: _Message | None = None
    index: int = 0
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _ErrorInfo | None = None


class _UsageOnly(msgspec.Struct):
    usage: _Usage | None = None


_decode_message = msgspec.json.Decoder(_Message).decode
_decode_event = msgspec.json.Decoder(_Event).decode
_decode_usage_only = msgspec.json.Decoder(_UsageOnly).decode
_decode_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def _parse_native(event: bytes) -> _Event | None:
    _, data = parse_event(event)
    try:
        return _decode_event(data)
    except msgspec.DecodeError:
        return None


def anthropic_usage(u: _Usage | None, into: Usage | None = None) -> Usage:
    """Anthropic's usage as ours. Anthropic's `input_tokens` excludes cache reads and
    cache writes; our `prompt_tokens` counts all three. Fields missing from `u` (a
    `message_delta` carries only what changed) keep the values already in `into`."""
    usage = into if into is not None else Usage()
    if u is None:
        return usage
    fresh = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    if u.input_tokens is not None:
        fresh = u.input_tokens
    if u.cache_read_input_tokens is not None:
        usage.cached_tokens = u.cache_read_input_tokens
    if u.cache_creation_input_tokens is not None:
        usage.cache_write_tokens = u.cache_creation_input_tokens
    usage.prompt_tokens = fresh + usage.cached_tokens + usage.cache_write_tokens
    if u.output_tokens is not None:
        usage.completion_tokens = u.output_tokens
    return usage


class AnthropicProvider(HttpProvider):
    kind = "anthropic"
    wire = "anthropic"
    wires: ClassVar[frozenset[str]] = frozenset({"anthropic"})
    Options = AnthropicOptions
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com/v1"
    api_versions = ("/v1",)  # `https://api.anthropic.com` works too, as in the SDK

    def headers(self) -> dict[str, str]:
        options: AnthropicOptions = self.options
        extra = {"anthropic-version": options.anthropic_version}
        if options.beta:
            extra["anthropic-beta"] = ",".join(options.beta)
        return self.json_headers("x-api-key", extra=extra)

    def native_headers(self, ctx: RequestContext) -> dict[str, str]:
        """The provider's headers with the client's protocol headers: its
        `anthropic-version`, and its `anthropic-beta` flags added to the configured ones."""
        base = self.headers()
        version = ctx.headers.get("anthropic-version")
        beta = ctx.headers.get("anthropic-beta")
        if version is None and beta is None:
            return base
        headers = dict(base)
        if version:
            headers["anthropic-version"] = version
        if beta:
            configured = base.get("anthropic-beta")
            headers["anthropic-beta"] = f"{configured},{beta}" if configured else beta
        return headers

    def chat_request(
        self, ctx: RequestContext, model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        upstream = self.upstream_model(model)
        if ctx.wire == "anthropic":
            extra = {"model": upstream} if upstream != ctx.requested_model else None
            return self.base_url + "/messages", self.native_headers(ctx), ctx.body_bytes(extra)
        body = anthropic_request(ctx.payload(), upstream, stream, self.options.default_max_tokens)
        return self.base_url + "/messages", self.headers(), _encode(body)

    async def count_tokens(self, ctx: RequestContext, raw: bytes, model: str) -> bytes:
        """Anthropic's exact count from its own endpoint (the client's body, our key)."""
        upstream = self.upstream_model(model)
        if upstream != model:
            top = _decode_top(raw)
            top["model"] = msgspec.Raw(_encode(upstream))
            raw = _encode(top)
        url = self.base_url + "/messages/count_tokens"
        resp = await self._send(url, self.native_headers(ctx), raw, False, ctx=ctx)
        return await resp.read()

    def chat_response(self, ctx: RequestContext, model: str, body: bytes) -> bytes:
        if ctx.wire == "anthropic":
            ctx.usage = anthropic_usage(self.decode_answer(_decode_usage_only, body).usage)
            return body
        message = self.decode_answer(_decode_message, body)
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text" and block.text:
                texts.append(block.text)
            elif block.type == "tool_use":
                arguments = bytes(block.input).decode()
                calls.append(ToolCall(block.id or "", block.name or "", arguments))
        ctx.usage = anthropic_usage(message.usage)
        return completion_body(
            ident=message.id,
            model=model,
            text="".join(texts) if texts or not calls else None,
            tool_calls=calls,
            finish_reason=FINISH_REASONS.get(message.stop_reason or "", "stop"),
            usage=ctx.usage,
        )

    def chat_events(
        self, ctx: RequestContext, model: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        if ctx.wire == "anthropic":
            return self._native_events(ctx, chunks)
        return self._canonical_events(ctx, model, chunks)

    async def _native_events(
        self, ctx: RequestContext, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """The provider's events relayed as they arrive, whole events per network chunk
        (so `wrap_stream` sees whole events), usage read on the way from message_start
        and message_delta; only an `error` event is raised (failover before the first
        byte, an error event after it)."""
        splitter = EventSplitter()
        usage: Usage | None = None
        done = False
        relayed = 0
        try:
            async for chunk in chunks:
                events = splitter.feed(chunk)
                if not events:
                    continue
                for i, event in enumerate(events):
                    head = event[:40]
                    if b"message_start" in head or b"message_delta" in head:
                        parsed = _parse_native(event)
                        if parsed is not None:
                            source = parsed.message.usage if parsed.message else parsed.usage
                            usage = ctx.usage = anthropic_usage(source, usage)
                    elif b"message_stop" in head:
                        done = True
                    elif b"event: error" in head:
                        if i:
                            yield b"".join(events[:i])
                        parsed = _parse_native(event)
                        raise self._stream_error(parsed.error if parsed else None)
                    relayed += 1
                yield events[0] if len(events) == 1 else b"".join(events)
            if not done:
                raise ended_early(self.name)
        finally:
            if usage is None or not done:
                ctx.usage = cut_off_usage(ctx, usage, relayed)

    async def _canonical_events(
        self, ctx: RequestContext, model: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        state = _StreamState(ctx, model)
        try:
            async for batch in sse_data(chunks, _decode_event):
                out: list[bytes] = []
                for event in batch:
                    if event.type == "error":
                        # What came before the error still goes out first, however the
                        # network happened to split the stream into chunks.
                        if out:
                            yield b"".join(out)
                        raise self._stream_error(event.error)
                    state.on(event, out)
                if out:
                    yield b"".join(out)
            if not state.done:
                raise ended_early(self.name)
        finally:
            if state.usage is None or not state.done:
                events = state.writer.content_events if state.writer else 0
                ctx.usage = cut_off_usage(ctx, state.usage, events)

    def _stream_error(self, info: _ErrorInfo | None) -> UpstreamError:
        info = info or _ErrorInfo()
        status = STATUS_BY_ERROR_TYPE.get(info.type, 500)
        return upstream_error(self, status, {}, info.message, info.type)


class _StreamState:
    """One Anthropic stream being turned into canonical chunks."""

    __slots__ = ("ctx", "done", "finish", "model", "tools", "usage", "writer")

    def __init__(self, ctx: RequestContext, model: str) -> None:
        self.ctx = ctx
        self.model = model
        self.writer: ChunkWriter | None = None
        self.usage: Usage | None = None
        self.tools: dict[int, int] = {}  # Anthropic content block index -> tool index
        self.finish = "stop"
        self.done = False

    def on(self, event: _Event, out: list[bytes]) -> None:
        kind = event.type
        writer = self.writer
        if kind == "message_start" and event.message is not None:
            self.writer = ChunkWriter(event.message.id, self.model)
            self.usage = self.ctx.usage = anthropic_usage(event.message.usage)
            out.append(self.writer.role())
        elif writer is None:
            return  # nothing before message_start means anything
        elif kind == "content_block_start" and event.content_block is not None:
            block = event.content_block
            if block.type == "tool_use":
                index, chunk = writer.tool_start(block.id or "", block.name or "")
                self.tools[event.index] = index
                out.append(chunk)
            elif block.type == "text" and block.text:
                out.append(writer.text(block.text))
        elif kind == "content_block_delta" and event.delta is not None:
            delta = event.delta
            if delta.type == "text_delta" and delta.text:
                out.append(writer.text(delta.text))
            elif delta.type == "input_json_delta" and delta.partial_json:
                tool = self.tools.get(event.index)
                if tool is not None:
                    out.append(writer.tool_arguments(tool, delta.partial_json))
        elif kind == "message_delta":
            if event.delta is not None and event.delta.stop_reason:
                self.finish = FINISH_REASONS.get(event.delta.stop_reason, "stop")
            self.usage = self.ctx.usage = anthropic_usage(event.usage, self.usage)
        elif kind == "message_stop":
            self.done = True
            out.append(writer.finish(self.finish) + writer.usage_if_asked(self.ctx) + DONE)
