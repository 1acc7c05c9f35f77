"""The parts of a canonical chat.completion (or chunk) that inbound renderers read.

The Anthropic and Responses renderers both turn canonical answers and chunks into their
own format; they decode the same few fields, so the Structs live here once.
"""

from __future__ import annotations

import msgspec

__all__ = ["CanonicalCall", "CanonicalChoice", "CanonicalFunction", "CanonicalMessage"]


class CanonicalFunction(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class CanonicalCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: CanonicalFunction | None = None


class CanonicalMessage(msgspec.Struct):
    """A choice's `message` (whole answer) or `delta` (stream chunk)."""

    content: str | None = None
    tool_calls: list[CanonicalCall] | None = None


class CanonicalChoice(msgspec.Struct):
    message: CanonicalMessage | None = None
    delta: CanonicalMessage | None = None
    finish_reason: str | None = None
