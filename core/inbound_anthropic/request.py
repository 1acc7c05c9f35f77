"""The Anthropic Messages request, decoded and translated into a canonical one.

Typed msgspec Structs (content blocks as a tagged union), so a bad field fails the
decode with its path; the translation is pure, no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ..errors import GatewayError
from ..validate import MaxTokens, Probability, check_model

__all__ = ["canonical_request"]

_encode = msgspec.json.Encoder().encode


# -- the request -------------------------------------------------------------------------
class _ImageSource(msgspec.Struct):
    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class _Text(msgspec.Struct, tag="text"):
    text: str


class _Image(msgspec.Struct, tag="image"):
    source: _ImageSource


class _ToolUse(msgspec.Struct, tag="tool_use"):
    id: str
    name: str
    input: msgspec.Raw


class _ToolResult(msgspec.Struct, tag="tool_result"):
    tool_use_id: str
    content: str | list[_Text | _Image] | None = None
    is_error: bool = False


class _Thinking(msgspec.Struct, tag="thinking"):
    thinking: str = ""


class _RedactedThinking(msgspec.Struct, tag="redacted_thinking"):
    data: str = ""


_Block = _Text | _Image | _ToolUse | _ToolResult | _Thinking | _RedactedThinking


class _Message(msgspec.Struct):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _Tool(msgspec.Struct):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None


class _ToolChoice(msgspec.Struct):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class _Metadata(msgspec.Struct):
    user_id: str | None = None


class _Request(msgspec.Struct):
    model: str
    messages: list[_Message]
    max_tokens: MaxTokens
    system: str | list[_Text] | None = None
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: Probability | None = None  # Anthropic's range is 0..1
    top_p: Probability | None = None
    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    metadata: _Metadata | None = None


_decode_request = msgspec.json.Decoder(_Request).decode


def _image_part(image: _Image) -> dict[str, Any]:
    source = image.source
    if source.type == "base64":
        url = f"data:{source.media_type};base64,{source.data}"
    elif source.type == "url" and source.url:
        url = source.url
    else:
        raise GatewayError(
            400, "invalid_request_error", f"image source type {source.type!r} is not supported"
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(result: _ToolResult) -> str:
    if isinstance(result.content, str):
        return result.content
    return "".join(b.text for b in result.content or [] if isinstance(b, _Text))


def _canonical_messages(request: _Request) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(request.system, str):
        out.append({"role": "system", "content": request.system})
    elif request.system:
        out.append({"role": "system", "content": "\n\n".join(b.text for b in request.system)})
    for message in request.messages:
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, _Text):
                parts.append({"type": "text", "text": block.text})
            elif isinstance(block, _Image):
                parts.append(_image_part(block))
            elif isinstance(block, _ToolUse):
                arguments = bytes(block.input).decode()
                function = {"name": block.name, "arguments": arguments}
                calls.append({"id": block.id, "type": "function", "function": function})
            elif isinstance(block, _ToolResult):
                # OpenAI wants tool results as their own messages right after the call.
                text = _tool_result_text(block)
                out.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": text})
            # thinking blocks are the model's own scratch space: not sent on.
        if message.role == "assistant":
            text = "".join(p["text"] for p in parts if p["type"] == "text")
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        elif parts:
            out.append({"role": "user", "content": parts})
    return out


def _canonical_tool_choice(choice: _ToolChoice) -> Any:
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name or ""}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def _canonical(request: _Request) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": _canonical_messages(request),
        "max_tokens": request.max_tokens,
    }
    if request.stream:
        body["stream"] = True
    if request.stop_sequences:
        body["stop"] = request.stop_sequences
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description or "",
                    "parameters": t.input_schema,
                },
            }
            for t in request.tools
        ]
    if request.tool_choice is not None:
        body["tool_choice"] = _canonical_tool_choice(request.tool_choice)
        if request.tool_choice.disable_parallel_tool_use and request.tools:
            body["parallel_tool_calls"] = False
    if request.metadata is not None and request.metadata.user_id:
        body["user"] = request.metadata.user_id
    return body


def validate_request(raw: bytes) -> _Request:
    """The request's known fields, type-checked (unknown fields are skipped, not lost:
    the native path forwards the original bytes); raises msgspec's error on a bad field."""
    request = _decode_request(raw)
    check_model(request.model)
    if not request.messages:
        raise GatewayError(
            400, "invalid_request_error", "`messages` must not be empty", param="messages"
        )
    return request


def canonical_request(raw: bytes) -> tuple[bytes, bool]:
    """`(canonical chat-completions body, stream)`; raises msgspec's error on a bad field
    and `GatewayError(400)` on what the canonical shape cannot carry."""
    request = validate_request(raw)
    return _encode(_canonical(request)), request.stream
