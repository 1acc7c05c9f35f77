"""Canonical (OpenAI chat completions) requests into Anthropic Messages requests.

Pure functions on decoded JSON: no I/O, no context. A request Anthropic cannot express
raises `GatewayError(400)` naming the field, before anything is sent.
"""

from __future__ import annotations

from typing import Any

from .canonical import (
    add_turn,
    bad_request,
    data_url,
    is_text_part,
    messages_of,
    parse_arguments,
    stop_sequences,
    tool_call_id,
    tool_calls_of,
)

__all__ = ["FINISH_REASONS", "STATUS_BY_ERROR_TYPE", "anthropic_request", "image_source"]


# Anthropic stop_reason -> OpenAI finish_reason.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The HTTP status Anthropic uses for each error type, for errors inside a stream.
STATUS_BY_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def image_source(url: Any, where: str) -> dict[str, Any]:
    """An OpenAI `image_url` (a data: URL or an http(s) URL) as an Anthropic source."""
    inline = data_url(url, where)
    if inline is None:
        return {"type": "url", "url": url}
    return {"type": "base64", "media_type": inline[0], "data": inline[1]}


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI message content (a string or parts) as Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("content must be a string or a list of parts", where)
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": part.get("text", "")}
            if part.get("cache_control") is not None:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append({"type": "image", "source": image_source(url, f"{where}[{i}]")})
        else:
            raise bad_request(
                f"content part type {kind!r} is not supported by this provider", where
            )
    return blocks


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and is_text_part(p))
    return ""


def _messages(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`(system blocks, messages)`; consecutive turns of one role are merged, as
    Anthropic wants user and assistant to alternate (tool results are user turns)."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    for where, role, message in messages_of(payload):
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_blocks(content, where + ".content"))
        elif role == "user":
            add_turn(out, "user", "content", _blocks(content, where + ".content"))
        elif role == "assistant":
            blocks = _blocks(content, where + ".content")
            for call in tool_calls_of(message, where):
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": parse_arguments(call.arguments),
                    }
                )
            add_turn(out, "assistant", "content", blocks)
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": tool_call_id(message, where),
                "content": _text_of(content),
            }
            add_turn(out, "user", "content", [result])
    return system, out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is None:
        return None
    result: dict[str, Any]
    if choice in (None, "auto"):
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        raise bad_request("unsupported tool_choice", "tool_choice")
    if parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def anthropic_request(
    payload: dict[str, Any], model: str, stream: bool, default_max_tokens: int
) -> dict[str, Any]:
    """The Anthropic Messages request for a canonical chat-completions payload."""
    system, messages = _messages(payload)
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens or default_max_tokens,
    }
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    temperature = payload.get("temperature")
    if isinstance(temperature, int | float):
        # OpenAI allows 0..2, Anthropic 0..1: a request failing over keeps working.
        body["temperature"] = min(float(temperature), 1.0)
    if payload.get("top_p") is not None:
        body["top_p"] = payload["top_p"]
    stop = stop_sequences(payload.get("stop"))
    if stop:
        body["stop_sequences"] = stop
    tools = payload.get("tools")
    if tools:
        body["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    choice = _tool_choice(payload.get("tool_choice"), payload.get("parallel_tool_calls"))
    if choice is not None and (tools or choice["type"] == "none"):
        body["tool_choice"] = choice
    if isinstance(payload.get("user"), str):
        body["metadata"] = {"user_id": payload["user"]}
    return body


def _tool(tool: Any, i: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise bad_request("only function tools with a name are supported", f"tools[{i}]")
    out: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out
