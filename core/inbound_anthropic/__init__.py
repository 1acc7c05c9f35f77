"""`POST /v1/messages`: the Anthropic Messages API as an inbound format.

A request in Anthropic's shape is decoded with msgspec (a bad field is a 400 naming it,
in Anthropic's error shape) and translated into a canonical chat-completions body, so
it goes through the same hooks to any provider. Canonical answers come back as an
Anthropic `message`, canonical chunks as Anthropic's SSE events (message_start,
content_block_start/delta/stop with text and tool_use blocks, message_delta with the
stop reason and usage, message_stop), errors as `{"type": "error", ...}`.

The `x-api-key` / `authorization` headers are the caller's key for the gateway: this
module never reads or forwards them.

Served by an `anthropic` provider, the request is NOT translated: the client's bytes go
upstream (model_map and plugin edits aside) and the provider's answer and events come
back untouched (core/wire.py, providers/anthropic.py), so `thinking`, `cache_control`
and any field added later reach Anthropic. Only for another provider is the request
translated, and there these are not carried: `cache_control` hints (OpenAI caches
prompts by itself), thinking blocks and the `thinking` option, `top_k`, document and
server-tool blocks (400), and images inside tool results (only their text is kept).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ..chunks import CanonicalCall, CanonicalChoice, CanonicalFunction, CanonicalMessage
from ..context import ChatHead, Endpoint, Inbound, RequestContext, Usage
from ..errors import GatewayError, UpstreamError, anthropic_error_body, scrub
from ..inbound import Decoded
from ..providers.base import estimate_tokens
from ..sse import EventSplitter, format_event, parse_event
from ..validate import check_body, invalid_request
from .request import validate_request

__all__ = ["AnthropicMessages"]

_encode = msgspec.json.Encoder().encode


# -- the answer ----------------------------------------------------------------------------
# OpenAI finish_reason -> Anthropic stop_reason.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _usage(usage: Usage) -> dict[str, int]:
    """Ours as Anthropic's: its `input_tokens` leaves out cache reads and writes."""
    fresh = max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens)
    return {
        "input_tokens": fresh,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def _message_id(ident: str, ctx: RequestContext) -> str:
    return ident if ident.startswith("msg_") else "msg_" + (ident or ctx.request_id)


_Function = CanonicalFunction
_Call = CanonicalCall
_OutMessage = CanonicalMessage
_Choice = CanonicalChoice


class _StreamError(msgspec.Struct):
    message: str = ""


class _Completion(msgspec.Struct):
    id: str = ""
    choices: list[_Choice] = []
    error: _StreamError | None = None  # an OpenAI-format upstream's error event


_decode_completion = msgspec.json.Decoder(_Completion).decode
_decode_json = msgspec.json.Decoder().decode
_decode_head = msgspec.json.Decoder(ChatHead).decode
_decode_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


class AnthropicMessages:
    """`POST /v1/messages`."""

    name: Inbound = "anthropic"
    endpoint: Endpoint = "chat"
    stream_headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    ]

    def decode(self, raw: bytes, headers: dict[str, str]) -> Decoded:
        """Validate the known fields and keep the body as the client sent it: an
        `anthropic` provider gets these bytes (core/wire.py translates them only for
        another provider), so unknown fields such as `thinking` are never lost."""
        check_body(raw)
        try:
            request = validate_request(raw)
            head = _decode_head(raw)
        except (msgspec.MsgspecError, RecursionError) as exc:
            raise invalid_request(exc) from None
        head.stream = request.stream
        return Decoded(head, raw, request.stream, False, "anthropic")

    def render(self, ctx: RequestContext, body: bytes) -> bytes:
        if ctx.wire == "anthropic":
            return body  # the provider's own answer, untouched
        completion = _decode_completion(body)
        choice = completion.choices[0] if completion.choices else _Choice()
        message = choice.message or _OutMessage()
        content: list[dict[str, Any]] = []
        if message.content:
            content.append({"type": "text", "text": message.content})
        for call in message.tool_calls or []:
            function = call.function or _Function()
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id or "",
                    "name": function.name or "",
                    "input": _arguments(function.arguments),
                }
            )
        return _encode(
            {
                "id": _message_id(completion.id, ctx),
                "type": "message",
                "role": "assistant",
                "model": ctx.requested_model,
                "content": content,
                "stop_reason": _STOP_REASONS.get(choice.finish_reason or "stop", "end_turn"),
                "stop_sequence": None,
                "usage": _usage(ctx.usage),
            }
        )

    def render_stream(
        self, ctx: RequestContext, events: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        if ctx.wire == "anthropic":
            return events  # the provider's own events, relayed as they arrive
        return _StreamRenderer(ctx).run(events)

    def error_body(self, err: GatewayError) -> bytes:
        return anthropic_error_body(err)

    def count_tokens(self, raw: bytes) -> bytes:
        """`POST /v1/messages/count_tokens`: `{"input_tokens": N}` for a Messages request.

        An estimate, since the upstream may not be Anthropic and no provider tokenizer
        runs in the gateway: the one rule of `estimate_tokens` (about four characters a
        token) over the request as the client sent it, which is how the gateway holds a
        /v1/messages request, so it is the count `estimate_prompt_tokens` gives that
        request. Bad input is a 400 like /v1/messages.
        """
        check_body(raw)
        try:
            top = _decode_top(raw)
        except (msgspec.MsgspecError, RecursionError) as exc:
            raise invalid_request(exc) from None
        top.setdefault("max_tokens", msgspec.Raw(b"1"))  # counting requests carry none
        self.decode(_encode(top), {})  # the same checks as /v1/messages
        return _encode({"input_tokens": estimate_tokens(raw)})

    def stream_error(self, err: GatewayError) -> bytes:
        return format_event(anthropic_error_body(err), "error")


def _arguments(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return _decode_json(text)
    except msgspec.DecodeError:
        return {}


def _event(name: str, doc: dict[str, Any]) -> bytes:
    return format_event(_encode({"type": name, **doc}), name)


class _StreamRenderer:
    """Canonical chunks in, Anthropic events out: one open content block at a time."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.block = -1  # index of the open content block, -1 when none is open
        self.open_kind: str | None = None  # "text" or "tool_use"
        self.tool_index: int | None = None  # canonical index of the open tool call
        self.stop_reason = "end_turn"
        self.started = False

    async def run(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        splitter = EventSplitter()
        async for chunk in events:
            out: list[bytes] = []
            for event in splitter.feed(chunk):
                _, data = parse_event(event)
                if not data or data == b"[DONE]":
                    continue
                try:
                    completion = _decode_completion(data)
                except msgspec.DecodeError:
                    continue
                if completion.error is not None:
                    # Relay what came before, then let the core send the error event.
                    if out:
                        yield b"".join(out)
                    raise UpstreamError(
                        502,
                        "upstream_error",
                        f"the provider failed mid-stream: {scrub(completion.error.message, [])}",
                        retryable=False,
                    )
                self._chunk(completion, out)
            if out:
                yield b"".join(out)
        yield self._end()

    def _start(self, ident: str, out: list[bytes]) -> None:
        self.started = True
        usage = _usage(self.ctx.usage)
        usage["output_tokens"] = 0
        message: dict[str, Any] = {
            "id": _message_id(ident, self.ctx),
            "type": "message",
            "role": "assistant",
            "model": self.ctx.requested_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        out.append(_event("message_start", {"message": message}))

    def _close(self, out: list[bytes]) -> None:
        if self.open_kind is not None:
            out.append(_event("content_block_stop", {"index": self.block}))
            self.open_kind = None

    def _open(self, block: dict[str, Any], out: list[bytes]) -> None:
        self._close(out)
        self.block += 1
        self.open_kind = block["type"]
        out.append(_event("content_block_start", {"index": self.block, "content_block": block}))

    def _delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        out.append(_event("content_block_delta", {"index": self.block, "delta": delta}))

    def _chunk(self, completion: _Completion, out: list[bytes]) -> None:
        if not self.started:
            self._start(completion.id, out)
        for choice in completion.choices[:1]:
            delta = choice.delta or _OutMessage()
            if delta.content:
                if self.open_kind != "text":
                    self._open({"type": "text", "text": ""}, out)
                self._delta({"type": "text_delta", "text": delta.content}, out)
            for call in delta.tool_calls or []:
                function = call.function or _Function()
                if self.open_kind != "tool_use" or call.index != self.tool_index:
                    block = {"type": "tool_use", "id": call.id or "", "name": function.name or ""}
                    self._open({**block, "input": {}}, out)
                    self.tool_index = call.index
                if function.arguments:
                    self._delta(
                        {"type": "input_json_delta", "partial_json": function.arguments}, out
                    )
            if choice.finish_reason:
                self.stop_reason = _STOP_REASONS.get(choice.finish_reason, "end_turn")

    def _end(self) -> bytes:
        out: list[bytes] = []
        if not self.started:
            self._start("", out)
        self._close(out)
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        out.append(_event("message_delta", {"delta": delta, "usage": _usage(self.ctx.usage)}))
        out.append(_event("message_stop", {}))
        return b"".join(out)
