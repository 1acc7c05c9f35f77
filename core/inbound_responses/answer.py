"""The pieces of an OpenAI Response object built from a canonical answer.

Shared by the whole answer (inbound_responses.py) and the stream (its snapshots in
`response.created` and `response.completed`), so both say the same thing: the output
items (`message` with `output_text`, `function_call`, `custom_tool_call`, the namespace
a flattened tool came from), the status a finish reason means, and the usage. Field
order follows OpenAI's documented objects. Pure functions: no I/O.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from ..context import RequestContext, Usage
from ..errors import GatewayError
from .request import Turn
from .tools import Origin

__all__ = [
    "DEFAULT_ECHO",
    "call_item",
    "error_object",
    "item_id",
    "message_item",
    "outcome",
    "response_object",
    "usage_json",
]

_decode_args = msgspec.json.Decoder(dict[str, Any]).decode

# What a Response object repeats of a request that was never translated (a plugin's
# ready answer): OpenAI's defaults.
DEFAULT_ECHO: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "parallel_tool_calls": True,
    "reasoning": {"effort": None, "summary": None},
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
    "metadata": {},
}


def item_id(turn: Turn, prefix: str, index: int) -> str:
    """`msg_…`, `fc_…`: unique, since the turn's id is random."""
    return f"{prefix}_{turn.id[7:]}{index:04x}"


def usage_json(usage: Usage) -> dict[str, Any]:
    """Ours as the Responses API's: `input_tokens` counts cached and cache-write tokens
    too, `output_tokens` counts reasoning tokens too."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def outcome(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """`(status, incomplete_details)` for a canonical finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def message_item(ident: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "type": "message",
        "id": ident,
        "status": status,
        "role": "assistant",
        "content": content if status != "in_progress" else [],
    }


def call_item(
    ident: str,
    call_id: str,
    name: str,
    arguments: str,
    names: dict[str, Origin],
    status: str = "completed",
) -> dict[str, Any]:
    """A `function_call` item, or a `custom_tool_call` for a custom tool (its `input` is
    the one string argument it was given as a function); the client's own tool name and
    namespace, not the flattened one."""
    origin = names.get(name) or Origin("function", name)
    if origin.kind == "custom":
        item: dict[str, Any] = {
            "type": "custom_tool_call",
            "id": ident,
            "status": status,
            "call_id": call_id,
            "name": origin.name,
            "input": custom_input(arguments),
        }
    else:
        item = {
            "type": "function_call",
            "id": ident,
            "status": status,
            "call_id": call_id,
            "name": origin.name,
            "arguments": arguments,
        }
    if origin.namespace:
        item["namespace"] = origin.namespace
    return item


def custom_input(arguments: str) -> str:
    """A custom tool's free-form input from the arguments of its function stand-in."""
    try:
        value = _decode_args(arguments).get("input") if arguments else ""
    except msgspec.DecodeError:
        return arguments
    return value if isinstance(value, str) else arguments


def error_object(err: GatewayError) -> dict[str, Any]:
    """A failed Response's `error`: OpenAI's codes for rate limits and server errors."""
    code = "rate_limit_exceeded" if err.status == 429 else "server_error"
    return {"code": code, "message": err.message}


def response_object(
    ctx: RequestContext,
    turn: Turn,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    echo = turn.echo or DEFAULT_ECHO
    return {
        "id": turn.id,
        "object": "response",
        "created_at": turn.created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": echo["instructions"],
        "max_output_tokens": echo["max_output_tokens"],
        "model": ctx.requested_model,
        "output": output,
        "parallel_tool_calls": echo["parallel_tool_calls"],
        "previous_response_id": turn.previous_id,
        "reasoning": echo["reasoning"],
        "store": turn.store,
        "temperature": echo["temperature"],
        "text": echo["text"],
        "tool_choice": echo["tool_choice"],
        "tools": echo["tools"],
        "top_p": echo["top_p"],
        "truncation": echo["truncation"],
        "usage": usage_json(usage) if usage is not None else None,
        "user": echo["user"],
        "metadata": echo["metadata"],
    }
