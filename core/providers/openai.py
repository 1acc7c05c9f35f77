"""OpenAI chat completions, embeddings and the Responses API: bytes pass through.

Request bodies go out as the client sent them (only `model` is rewritten when the
provider maps names, and `stream_options.include_usage` is added to streams so usage is
never missing); responses come back untouched. The extra usage chunk is removed again
when the client did not ask for it. A `/v1/responses` request (`ctx.wire ==
"responses"`) goes to `{base_url}/responses` with the client's `OpenAI-Beta` header
(openai_responses.py reads its usage). `openai-compatible` (Ollama, vLLM, Groq, Mistral,
DeepSeek, Together, OpenRouter) is the same adapter with an optional key; it gets
Responses requests translated to chat completions.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

import msgspec

from ..context import RequestContext, Usage
from ..errors import upstream_error
from ..sse import EventSplitter
from . import openai_responses
from .base import HttpProvider, ProviderReply, estimated_usage

__all__ = ["OpenAICompatibleProvider", "OpenAIProvider", "usage_from_openai"]


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = 0


class _OpenAIUsage(msgspec.Struct):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    prompt_tokens_details: _PromptDetails | None = None


class _UsageOnly(msgspec.Struct):
    usage: _OpenAIUsage | None = None


class _ChunkHead(msgspec.Struct):
    usage: _OpenAIUsage | None = None
    choices: list[msgspec.Raw] = []


_decode_usage = msgspec.json.Decoder(_UsageOnly).decode
_decode_chunk = msgspec.json.Decoder(_ChunkHead).decode
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_INCLUDE_USAGE = {"include_usage": True}


def usage_from_openai(u: _OpenAIUsage) -> Usage:
    cached = (u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0
    return Usage(
        prompt_tokens=u.prompt_tokens or 0,
        completion_tokens=u.completion_tokens or 0,
        cached_tokens=cached,
    )


def _with_include_usage(ctx: RequestContext, extra: dict[str, Any] | None) -> bytes:
    """The body with `stream_options.include_usage` set.

    The common case (no overrides, no `stream_options` sent) splices the field in after
    the opening brace instead of re-encoding the body. "Not sent" must mean absent:
    splicing into a body that has `"stream_options": null` would make the key appear
    twice, and the last (null) wins in most parsers. `ChatHead` decodes an absent key as
    UNSET and null as None (msgspec unescapes keys, so no spelling of it slips by).
    """
    head = ctx.body
    options = getattr(head, "stream_options", None)
    if extra is None and not ctx.overrides and options is msgspec.UNSET:
        raw = ctx.raw
        start = raw.find(b"{")
        return raw[: start + 1] + b'"stream_options":{"include_usage":true},' + raw[start + 1 :]
    merged = dict(extra or {})
    merged["stream_options"] = {**(options or {}), **_INCLUDE_USAGE}
    return ctx.body_bytes(merged)


class OpenAIProvider(HttpProvider):
    kind = "openai"
    wires: ClassVar[frozenset[str]] = frozenset({"openai", "responses"})
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"

    def headers(self) -> dict[str, str]:
        return self.json_headers("authorization", "Bearer ")

    def url(self, model: str, path: str) -> str:
        """The upstream URL of `path` (`/chat/completions`, `/embeddings`) for `model`."""
        return self.base_url + path

    def responses_url(self, suffix: str = "") -> str:
        """The Responses API's URL (`suffix`: `/{id}` for one stored response)."""
        return self.base_url + "/responses" + suffix

    def native_headers(self, ctx: RequestContext) -> dict[str, str]:
        """The provider's headers, with the client's `OpenAI-Beta` feature flags."""
        beta = ctx.headers.get("openai-beta")
        base = self.headers()
        return {**base, "openai-beta": beta} if beta else base

    async def responses_object(
        self, ctx: RequestContext, method: str, response_id: str
    ) -> tuple[int, bytes]:
        """`GET` or `DELETE` one response the provider stores: `(status, body)`."""
        url = self.responses_url("/" + quote(response_id, safe=""))
        resp = await self.client.send(method, url, self.native_headers(ctx), None, stream=False)
        body = await resp.read()
        if resp.status >= 400:
            message, type_ = self.error_message(body)
            raise upstream_error(self, resp.status, resp.headers, message, type_)
        return resp.status, body

    def _body(self, ctx: RequestContext, model: str, stream: bool) -> bytes:
        upstream = self.upstream_model(model)
        extra = {"model": upstream} if upstream != ctx.body.model else None
        if stream and not ctx.include_usage:
            return _with_include_usage(ctx, extra)
        return ctx.body_bytes(extra)

    def chat_request(
        self, ctx: RequestContext, model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        if ctx.wire == "responses":
            upstream = self.upstream_model(model)
            extra = {"model": upstream} if upstream != ctx.requested_model else None
            return self.responses_url(), self.native_headers(ctx), ctx.body_bytes(extra)
        url = self.url(model, "/chat/completions")
        return url, self.headers(), self._body(ctx, model, stream)

    def chat_response(self, ctx: RequestContext, model: str, body: bytes) -> bytes:
        if ctx.wire == "responses":
            openai_responses.read_usage(ctx, body)
        else:
            _read_usage(ctx, body)
        return body

    def chat_events(
        self, ctx: RequestContext, model: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        if ctx.wire == "responses":
            return openai_responses.relay(ctx, chunks, self.name)
        return self._chat_events(ctx, chunks)

    async def _chat_events(
        self, ctx: RequestContext, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        splitter = EventSplitter()
        drop_usage_chunk = not ctx.include_usage
        content_events = 0
        seen_usage = False
        try:
            async for chunk in chunks:
                events = splitter.feed(chunk)
                if not events:
                    continue
                kept: list[bytes] = []
                for event in events:
                    if _USAGE_OBJECT.search(event) is not None:
                        usage, is_usage_only = _chunk_usage(event)
                        if usage is not None:
                            ctx.usage = usage_from_openai(usage)
                            seen_usage = True
                            if drop_usage_chunk and is_usage_only:
                                continue
                    elif not event.startswith(b"data: [DONE]"):
                        content_events += 1
                    kept.append(event)
                if kept:
                    yield kept[0] if len(kept) == 1 else b"".join(kept)
            rest = splitter.rest()
            if rest.strip():
                yield rest + b"\n\n"
        finally:
            if not seen_usage:
                ctx.usage = estimated_usage(ctx, max(0, content_events - 1))

    async def embeddings(self, ctx: RequestContext, model: str) -> ProviderReply:
        upstream = self.upstream_model(model)
        body = ctx.body_bytes({"model": upstream} if upstream != ctx.body.model else None)
        resp = await self._send(
            self.url(model, "/embeddings"), self.headers(), body, False, ctx=ctx
        )
        data = await resp.read()
        _read_usage(ctx, data)
        return ProviderReply(data)


def _read_usage(ctx: RequestContext, body: bytes) -> None:
    """`ctx.usage` from a whole OpenAI answer; only its `usage` field is decoded."""
    try:
        usage = _decode_usage(body).usage
    except msgspec.DecodeError:
        return
    if usage is not None:
        ctx.usage = usage_from_openai(usage)


def _chunk_usage(event: bytes) -> tuple[_OpenAIUsage | None, bool]:
    start = event.find(b"{")
    if start < 0:
        return None, False
    try:
        head = _decode_chunk(event[start:].rstrip())
    except msgspec.DecodeError:
        return None, False
    return head.usage, not head.choices


class OpenAICompatibleProvider(OpenAIProvider):
    """Any server speaking OpenAI's API at a configured base_url; the key is optional."""

    kind = "openai-compatible"
    wires: ClassVar[frozenset[str]] = frozenset({"openai"})  # Responses requests: translated
    default_base_url: ClassVar[str | None] = None
    requires_key = False
