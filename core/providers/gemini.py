"""Google Gemini (`models/{model}:generateContent`, `:streamGenerateContent?alt=sse`),
translated to and from canonical.

The request is built by `gemini_translate`; this module reads Gemini's answers (typed
msgspec Structs). Each streamed event is a whole `GenerateContentResponse` holding new
parts: text becomes content deltas, a `functionCall` (Gemini sends it whole) becomes one
tool-call chunk, `finishReason` the finish chunk, and the cumulative `usageMetadata`
the usage. Gemini's stream has no end marker, so `[DONE]` is sent when it closes.

Not translated yet: `n` > 1 (only the first candidate is read), `logprobs`, audio and
file parts (400), thought parts and their `thoughtSignature` (dropped, so a thinking
model's multi-turn tool use loses its signatures), and tool-call ids, which Gemini
mostly does not send (`call_N` is made up; results are matched back by function name).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import msgspec

from ..context import RequestContext, Usage
from ..sse import DONE, sse_data
from .base import (
    HttpProvider,
    ProviderReply,
    cut_off_usage,
    estimate_prompt_tokens,
    path_segment,
)
from .canonical import ChunkWriter, ToolCall, bad_request, completion_body, ended_early
from .gemini_translate import FINISH_REASONS, gemini_request

__all__ = ["GeminiProvider", "gemini_usage"]

_encode = msgspec.json.Encoder().encode


class _FunctionCall(msgspec.Struct, rename="camel"):  # Gemini's JSON is camelCase
    name: str = ""
    args: msgspec.Raw = msgspec.Raw(b"{}")
    id: str | None = None


class _Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool = False
    function_call: _FunctionCall | None = None


class _Content(msgspec.Struct, rename="camel"):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None


class _UsageMetadata(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int = 0
    cached_content_token_count: int = 0


class _PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class _Response(msgspec.Struct, rename="camel"):
    candidates: list[_Candidate] = []
    usage_metadata: _UsageMetadata | None = None
    prompt_feedback: _PromptFeedback | None = None
    response_id: str = ""


class _Embedding(msgspec.Struct):
    values: list[float] = []


class _Embeddings(msgspec.Struct):
    embeddings: list[_Embedding] = []


_decode_response = msgspec.json.Decoder(_Response).decode
_decode_embeddings = msgspec.json.Decoder(_Embeddings).decode


def gemini_usage(u: _UsageMetadata) -> Usage:
    """Gemini's usage as ours: `prompt_token_count` already includes cached content;
    thinking tokens are billed as output, so they count as completion tokens."""
    return Usage(
        prompt_tokens=u.prompt_token_count,
        completion_tokens=u.candidates_token_count + u.thoughts_token_count,
        cached_tokens=u.cached_content_token_count,
    )


def _base64_floats(values: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: little-endian float32s, base64 encoded."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _arguments(call: _FunctionCall) -> str:
    return bytes(call.args).decode()


def _parts(candidate: _Candidate | None) -> list[_Part]:
    """The answer's parts, without thoughts (Gemini's thinking summaries)."""
    if candidate is None or candidate.content is None:
        return []
    return [part for part in candidate.content.parts if not part.thought]


def _finish(candidate: _Candidate | None, response: _Response, has_calls: bool) -> str | None:
    if candidate is None:
        blocked = response.prompt_feedback is not None and response.prompt_feedback.block_reason
        return "content_filter" if blocked else None
    if candidate.finish_reason is None:
        return None
    if has_calls and candidate.finish_reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(candidate.finish_reason, "stop")


class GeminiProvider(HttpProvider):
    kind = "gemini"
    default_base_url: ClassVar[str | None] = "https://generativelanguage.googleapis.com/v1beta"
    model_in_path = True
    # `https://generativelanguage.googleapis.com` (the SDK's form) gets /v1beta appended.
    api_versions = ("/v1beta", "/v1", "/v1alpha")

    def headers(self) -> dict[str, str]:
        return self.json_headers("x-goog-api-key")

    def chat_request(
        self, ctx: RequestContext, model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        name = path_segment(self.upstream_model(model))
        method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        url = f"{self.base_url}/models/{name}{method}"
        return url, self.headers(), _encode(gemini_request(ctx.payload()))

    async def embeddings(self, ctx: RequestContext, model: str) -> ProviderReply:
        """OpenAI embeddings through `batchEmbedContents`. Gemini reports no token usage
        for embeddings, so the usage is the gateway's estimate."""
        payload = ctx.payload()
        inputs = payload.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise bad_request("input must be a string or a list of strings", "input")
        name = path_segment(self.upstream_model(model))
        item: dict[str, Any] = {"model": f"models/{self.upstream_model(model)}"}
        if isinstance(payload.get("dimensions"), int):
            item["outputDimensionality"] = payload["dimensions"]
        body = {"requests": [{**item, "content": {"parts": [{"text": t}]}} for t in texts]}
        url = f"{self.base_url}/models/{name}:batchEmbedContents"
        resp = await self._send(url, self.headers(), _encode(body), False, ctx=ctx)
        answer = self.decode_answer(_decode_embeddings, await resp.read())
        tokens = estimate_prompt_tokens(ctx)
        ctx.usage = Usage(prompt_tokens=tokens, estimated=True)
        as_base64 = payload.get("encoding_format") == "base64"  # the openai SDK's default
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _base64_floats(e.values) if as_base64 else e.values,
            }
            for i, e in enumerate(answer.embeddings)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return ProviderReply(
            _encode({"object": "list", "data": data, "model": model, "usage": usage})
        )

    def chat_response(self, ctx: RequestContext, model: str, body: bytes) -> bytes:
        response = self.decode_answer(_decode_response, body)
        candidate = response.candidates[0] if response.candidates else None
        texts: list[str] = []
        calls: list[ToolCall] = []
        for part in _parts(candidate):
            if part.text:
                texts.append(part.text)
            if part.function_call is not None:
                call_id = part.function_call.id or f"call_{len(calls)}"
                calls.append(
                    ToolCall(call_id, part.function_call.name, _arguments(part.function_call))
                )
        if response.usage_metadata is not None:
            ctx.usage = gemini_usage(response.usage_metadata)
        return completion_body(
            ident=response.response_id or f"gemini-{ctx.request_id}",
            model=model,
            text="".join(texts) if texts or not calls else None,
            tool_calls=calls,
            finish_reason=_finish(candidate, response, bool(calls)) or "stop",
            usage=ctx.usage,
        )

    async def chat_events(
        self, ctx: RequestContext, model: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        writer: ChunkWriter | None = None
        finish: str | None = None
        has_calls = False
        seen_usage = False
        try:
            async for batch in sse_data(chunks, _decode_response):
                out: list[bytes] = []
                for response in batch:
                    if writer is None:
                        writer = ChunkWriter(
                            response.response_id or f"gemini-{ctx.request_id}", model
                        )
                        out.append(writer.role())
                    candidate = response.candidates[0] if response.candidates else None
                    for part in _parts(candidate):
                        if part.text:
                            out.append(writer.text(part.text))
                        if part.function_call is not None:
                            call = part.function_call
                            call_id = call.id or f"call_{writer.tool_count}"
                            out.append(writer.tool_start(call_id, call.name, _arguments(call))[1])
                            has_calls = True
                    finish = _finish(candidate, response, has_calls) or finish
                    if response.usage_metadata is not None:
                        ctx.usage = gemini_usage(response.usage_metadata)
                        seen_usage = True
                if out:
                    yield b"".join(out)
            if writer is None or finish is None:
                raise ended_early(self.name)
            yield writer.finish(finish) + writer.usage_if_asked(ctx) + DONE
        finally:
            if finish is None:  # cut off: keep the prompt count, estimate the rest
                events = writer.content_events if writer else 0
                ctx.usage = cut_off_usage(ctx, ctx.usage if seen_usage else None, events)
