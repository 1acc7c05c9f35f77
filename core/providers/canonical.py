"""Building the canonical (OpenAI chat completions) answer from a translated upstream.

Adapters that translate (Anthropic, Gemini) collect their answer into the same few
pieces, text, tool calls, a finish reason and usage, and this module turns them into a
`chat.completion` document or `chat.completion.chunk` events, so every translating
adapter emits exactly the same canonical shape. It knows no provider's wire format.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec

from ..context import RequestContext, Usage
from ..errors import GatewayError, UpstreamError
from ..sse import format_event

__all__ = [
    "ChunkWriter",
    "ToolCall",
    "add_turn",
    "bad_request",
    "completion_body",
    "data_url",
    "ended_early",
    "is_text_part",
    "messages_of",
    "parse_arguments",
    "stop_sequences",
    "tool_call_id",
    "tool_calls_of",
    "usage_json",
]

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode


class ToolCall(msgspec.Struct):
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it


def bad_request(message: str, param: str) -> GatewayError:
    return GatewayError(400, "invalid_request_error", message, param=param)


def messages_of(payload: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """`(where, role, message)` for each canonical message; `where` names it in errors."""
    for i, message in enumerate(payload.get("messages") or []):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request("each message must be an object", where)
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise bad_request(f"unknown role {role!r}", where + ".role")
        yield where, role, message


def is_text_part(part: dict[str, Any]) -> bool:
    """A content part whose `text` a join can use (a client may send null or a number)."""
    return isinstance(part.get("text"), str)


def tool_calls_of(message: dict[str, Any], where: str) -> list[ToolCall]:
    """An assistant message's `tool_calls`, each checked to be a function call with a
    string id, name and arguments: whatever else a client sends is a 400 naming it."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise bad_request("tool_calls must be a list", where + ".tool_calls")
    out: list[ToolCall] = []
    for i, call in enumerate(calls):
        here = f"{where}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise bad_request("each tool call must be an object with a `function`", here)
        ident, name = call.get("id", ""), function.get("name", "")
        arguments = function.get("arguments") or ""
        if not isinstance(ident, str) or not isinstance(name, str):
            raise bad_request("a tool call's id and function name must be strings", here)
        if not isinstance(arguments, str):
            raise bad_request("a tool call's arguments must be a JSON string", here)
        out.append(ToolCall(ident, name, arguments))
    return out


def tool_call_id(message: dict[str, Any], where: str) -> str:
    ident = message.get("tool_call_id", "")
    if not isinstance(ident, str):
        raise bad_request("tool_call_id must be a string", where + ".tool_call_id")
    return ident


def stop_sequences(stop: Any) -> list[str]:
    """OpenAI's `stop` (a string or a list of strings) as a list."""
    if stop is None or stop == "":
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_request("stop must be a string or a list of strings", "stop")
    return stops


def data_url(url: Any, where: str) -> tuple[str, str] | None:
    """`(media type, base64 data)` of a data: URL; None for an http(s) URL."""
    if not isinstance(url, str):
        raise bad_request("image_url.url is required", where)
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not sep or encoding != "base64":
            raise bad_request("image data URLs must be base64 encoded", where)
        return media_type, data
    if url.startswith(("http://", "https://")):
        return None
    raise bad_request("image_url must be a data: or http(s) URL", where)


def add_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[Any]) -> None:
    """Append a turn, or extend the last one when it has the same role: Anthropic and
    Gemini want the two sides to alternate, and tool results are user turns there."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def ended_early(provider: str) -> UpstreamError:
    """A stream that closed before its end marker: the client must not see a clean end."""
    return UpstreamError(
        502,
        "upstream_error",
        f"provider '{provider}' closed the stream before the answer was complete",
        retryable=True,
    )


def usage_json(usage: Usage) -> dict[str, Any]:
    """The OpenAI `usage` object. `prompt_tokens` already counts cached and cache-write
    tokens (see `Usage`); the cached part is reported in `prompt_tokens_details`."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def parse_arguments(arguments: str | None) -> Any:
    """A tool call's JSON argument text as an object (`{}` when empty or broken)."""
    if not arguments:
        return {}
    try:
        value = _decode_any(arguments)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def completion_body(
    *,
    ident: str,
    model: str,
    text: str | None,
    tool_calls: list[ToolCall],
    finish_reason: str,
    usage: Usage,
) -> bytes:
    # `refusal` is required by OpenAI's schema (null when the model did not refuse).
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in tool_calls
        ]
    return _encode(
        {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
            ],
            "usage": usage_json(usage),
        }
    )


class ChunkWriter:
    """Canonical `chat.completion.chunk` events of one streamed answer."""

    __slots__ = ("_base", "content_events", "tool_count")

    def __init__(self, ident: str, model: str) -> None:
        self._base = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self.content_events = 0  # for the usage estimate when a stream is cut off
        self.tool_count = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        doc = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return format_event(_encode(doc))

    def role(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> bytes:
        self.content_events += 1
        return self._chunk({"content": text})

    def tool_start(self, call_id: str, name: str, arguments: str = "") -> tuple[int, bytes]:
        """A new tool call: its index in the canonical stream and the event."""
        index = self.tool_count
        self.tool_count += 1
        self.content_events += 1
        call = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return index, self._chunk({"tool_calls": [call]})

    def tool_arguments(self, index: int, fragment: str) -> bytes:
        self.content_events += 1
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def finish(self, reason: str) -> bytes:
        return self._chunk({}, reason)

    def usage(self, usage: Usage) -> bytes:
        return format_event(_encode({**self._base, "choices": [], "usage": usage_json(usage)}))

    def usage_if_asked(self, ctx: RequestContext) -> bytes:
        return self.usage(ctx.usage) if ctx.include_usage else b""
