"""Server-sent events on bytes: split a byte stream into whole events, read their fields.

Network chunks split events (and multi-byte UTF-8 characters) anywhere, so parsing works
on bytes and only whole events are ever decoded. Nothing here touches the event loop.
"""

from __future__ import annotations

__all__ = ["DONE", "EventSplitter", "format_event", "parse_event"]

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
