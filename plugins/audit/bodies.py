"""Bodies for the audit record (only with `store_bodies = true`): the request as it left
for the provider, and the answer (a complete body, or the text of a stream assembled
from its deltas), every string passed through pii_redaction's `scrub` when that plugin
is on, so no value it detects reaches the audit store, restored placeholders included.

A stream is captured as the events it relayed and assembled only in `post_response`,
so relaying costs one list append per item.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from interlock.core import RequestContext

from .record import clean, scrub_json

__all__ = ["Captured", "capture", "record_bodies"]

_decode = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
Scrub = Callable[[str], str]


class Captured:
    """What the answer was, kept in ctx.state["audit"] until post_response."""

    __slots__ = ("body", "items", "wire")

    def __init__(self, wire: str) -> None:
        self.wire = wire
        self.body: bytes | None = None
        self.items: list[bytes] = []


async def capture(stream: AsyncIterator[bytes], into: Captured) -> AsyncIterator[bytes]:
    async for item in stream:
        into.items.append(item)
        yield item


def record_bodies(
    ctx: RequestContext, captured: Captured | None, scrub: Scrub | None
) -> tuple[str | None, str | None]:
    """(request body, response body) as stored text, or None for what is unknown."""
    request = scrub_json(ctx.body_bytes(), scrub) if ctx.raw else None
    response: str | None = None
    if ctx.response is not None:
        response = scrub_json(ctx.response.body, scrub)
    elif captured is not None and captured.body is not None:
        response = scrub_json(captured.body, scrub)
    elif captured is not None and captured.items:
        text = stream_text(captured.items, captured.wire)
        response = clean(_encode({"content": scrub(text) if scrub else text}).decode())
    return request, response


def stream_text(items: list[bytes], wire: str) -> str:
    """The answer's text from its SSE events: OpenAI chunks, or on a native pass-through
    Anthropic text deltas or Responses `output_text` deltas."""
    out: list[str] = []
    for event in b"".join(items).split(b"\n\n"):
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if not data.startswith(b"{"):
                continue
            try:
                doc = _decode(data)
            except msgspec.DecodeError:
                continue
            if wire == "anthropic":
                delta = doc.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("text"), str):
                    out.append(delta["text"])
                continue
            if wire == "responses":
                if doc.get("type") == "response.output_text.delta":
                    out.append(str(doc.get("delta") or ""))
                continue
            for choice in doc.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    out.append(delta["content"])
    return "".join(out)
