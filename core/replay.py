"""A complete chat.completion (a `ReadyResponse` from a cache, say) replayed as a stream.

A client that asked for a stream gets one even when a plugin answered from a cache:
the text and the tool calls of each choice as canonical `chat.completion.chunk` events,
the finish reason, the usage when the client asked for it, and `[DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from .sse import DONE, format_event

__all__ = ["replay"]


class _Function(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    function: _Function
    id: str = ""
    type: str = "function"


class _Message(msgspec.Struct):
    content: str | None = None
    role: str = "assistant"
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    message: _Message
    index: int = 0
    finish_reason: str | None = "stop"


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    id: str = "chatcmpl-ready"
    created: int = 0
    model: str = ""
    usage: dict[str, Any] | None = None


_decode = msgspec.json.Decoder(_Completion).decode
_encode = msgspec.json.Encoder().encode


async def replay(body: bytes, include_usage: bool) -> AsyncIterator[bytes]:
    doc = _decode(body)
    base = {"id": doc.id, "object": "chat.completion.chunk", "created": doc.created}
    base["model"] = doc.model

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": index, "delta": delta, "finish_reason": finish}
        return format_event(_encode({**base, "choices": [choice]}))

    for choice in doc.choices:
        message = choice.message
        yield chunk(choice.index, {"role": message.role, "content": message.content or ""}, None)
        for i, call in enumerate(message.tool_calls or ()):
            delta = {
                "tool_calls": [
                    {
                        "index": i,
                        "id": call.id,
                        "type": call.type,
                        "function": {
                            "name": call.function.name,
                            "arguments": call.function.arguments,
                        },
                    }
                ]
            }
            yield chunk(choice.index, delta, None)
        yield chunk(choice.index, {}, choice.finish_reason)
    if include_usage and doc.usage is not None:
        yield format_event(_encode({**base, "choices": [], "usage": doc.usage}))
    yield DONE
