"""The wire formats callers speak to the gateway, each turned into the canonical one.

An `Inbound` decodes a request body once (msgspec, typed, unknown fields kept as bytes),
after the byte-level checks of `validate` (UTF-8, nesting depth), and renders canonical
answers, streams and errors back in the caller's own shape. The OpenAI formats are the
canonical ones, so their rendering is the identity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec

from .context import ChatHead, EmbeddingsHead, Endpoint, Inbound, RequestContext
from .errors import GatewayError, openai_error_body
from .sse import format_event
from .validate import (
    Dimensions,
    MaxTokens,
    N,
    Probability,
    Temperature,
    check_body,
    check_model,
    invalid_request,
)

__all__ = [
    "ChatRequest",
    "Decoded",
    "EmbeddingsRequest",
    "InboundFormat",
    "OpenAIChat",
    "OpenAIEmbeddings",
    "invalid_request",
]


class Decoded(msgspec.Struct):
    """A decoded request: the typed head, the body bytes in `wire` format, stream flags."""

    head: ChatHead | EmbeddingsHead
    raw: bytes
    stream: bool = False
    include_usage: bool = False
    wire: Inbound = "openai"


class InboundFormat(Protocol):
    name: Inbound
    endpoint: Endpoint
    stream_headers: list[tuple[bytes, bytes]]

    def decode(self, raw: bytes, headers: dict[str, str]) -> Decoded: ...
    # `ctx` carries the usage the provider reported, for formats that put it in the body.
    def render(self, ctx: RequestContext, body: bytes) -> bytes: ...
    def render_stream(
        self, ctx: RequestContext, events: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]: ...
    def error_body(self, err: GatewayError) -> bytes: ...
    def stream_error(self, err: GatewayError) -> bytes: ...


class ChatRequest(ChatHead):
    """`ChatHead` with the numeric fields the gateway reads (and translates for other
    wire formats), each in its sane range (core/validate.py), so a 5,000-digit
    `max_tokens` is a 400 naming the field instead of a request sent on."""

    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    n: N | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None


class EmbeddingsRequest(EmbeddingsHead):
    dimensions: Dimensions | None = None


_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class OpenAIChat:
    """`POST /v1/chat/completions`: the canonical format itself."""

    name: Inbound = "openai"
    endpoint: Endpoint = "chat"
    stream_headers = _SSE_HEADERS

    _decode = msgspec.json.Decoder(ChatRequest).decode

    def decode(self, raw: bytes, headers: dict[str, str]) -> Decoded:
        check_body(raw)
        try:
            head = self._decode(raw)
        except (msgspec.MsgspecError, RecursionError) as exc:
            raise invalid_request(exc) from None
        check_model(head.model)
        if not head.messages:
            raise GatewayError(
                400, "invalid_request_error", "`messages` must not be empty", param="messages"
            )
        include_usage = bool(head.stream_options and head.stream_options.get("include_usage"))
        return Decoded(head, raw, head.stream, include_usage)

    def render(self, ctx: RequestContext, body: bytes) -> bytes:
        return body

    def render_stream(
        self, ctx: RequestContext, events: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        return events

    def error_body(self, err: GatewayError) -> bytes:
        return openai_error_body(err)

    def stream_error(self, err: GatewayError) -> bytes:
        # OpenAI's own streams report a failure as a data event carrying an error object.
        return format_event(openai_error_body(err))


class OpenAIEmbeddings(OpenAIChat):
    """`POST /v1/embeddings`."""

    endpoint: Endpoint = "embeddings"
    _decode_embeddings = msgspec.json.Decoder(EmbeddingsRequest).decode

    def decode(self, raw: bytes, headers: dict[str, str]) -> Decoded:
        check_body(raw)
        try:
            head = self._decode_embeddings(raw)
        except (msgspec.MsgspecError, RecursionError) as exc:
            raise invalid_request(exc) from None
        check_model(head.model)
        return Decoded(head, raw)


def tags_from(headers: dict[str, str], metadata: Any) -> dict[str, str]:
    """Tags from `X-Interlock-Tags: k=v,k=v`, `X-Feature`, and the body's `metadata`."""
    tags: dict[str, str] = {}
    if metadata is not None:
        try:
            decoded = msgspec.json.decode(metadata)
        except msgspec.DecodeError:
            decoded = None
        if isinstance(decoded, dict):
            tags.update(
                {
                    str(k)[:64]: str(v)[:256]
                    for k, v in decoded.items()
                    if isinstance(v, str | int | float | bool)
                }
            )
    raw_tags = headers.get("x-interlock-tags")
    if raw_tags:
        for part in raw_tags.split(","):
            key, sep, value = part.partition("=")
            if sep and key.strip():
                tags[key.strip()[:64]] = value.strip()[:256]
    feature = headers.get("x-feature")
    if feature:
        tags["feature"] = feature.strip()[:256]
    return tags
