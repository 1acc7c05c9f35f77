"""Server-sent events on bytes: split a byte stream into whole events, read their fields.

Network chunks split events (and multi-byte UTF-8 characters) anywhere, so parsing works
on bytes and only whole events are ever decoded. Nothing here touches the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import msgspec

T = TypeVar("T")

__all__ = ["DONE", "EventSplitter", "format_event", "parse_event", "sse_data"]

DONE = b"data: [DONE]\n\n"


class EventSplitter:
    """Feed network chunks, get back complete events (each ending in a blank line)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # CRLF streams; a "\r" left at the end of the buffer is joined on the next feed.
            buf = buf.replace(b"\r\n", b"\n")
        events: list[bytes] = []
        start = 0
        find = buf.find
        while (end := find(b"\n\n", start)) >= 0:
            events.append(buf[start : end + 2])
            start = end + 2
        self._buf = buf[start:]
        return events

    def pending(self) -> bool:
        """Whether part of an event is waiting for the rest of it."""
        return bool(self._buf)

    def rest(self) -> bytes:
        """What is left when the stream ends without a final blank line."""
        rest, self._buf = self._buf, b""
        return rest


def parse_event(event: bytes) -> tuple[str | None, bytes]:
    """`(event name or None, data)`; several `data:` lines are joined with a newline."""
    name: str | None = None
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, b"\n".join(data)


def format_event(data: bytes, event: str | None = None) -> bytes:
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def sse_data(
    chunks: AsyncIterator[bytes], decode: Callable[[bytes], T]
) -> AsyncIterator[list[T]]:
    """The decoded `data:` payloads of an upstream SSE stream, one list per network chunk
    (so an adapter yields once per chunk it received). Events and UTF-8 characters split
    across chunks are joined first; a payload that does not decode is skipped."""
    splitter = EventSplitter()
    async for chunk in chunks:
        batch = _decoded(splitter.feed(chunk), decode)
        if batch:
            yield batch
    rest = _decoded([splitter.rest()], decode)
    if rest:
        yield rest


def _decoded(events: list[bytes], decode: Callable[[bytes], T]) -> list[T]:
    out: list[T] = []
    for event in events:
        _, data = parse_event(event)
        if data:
            try:
                out.append(decode(data))
            except msgspec.DecodeError:
                continue
    return out
