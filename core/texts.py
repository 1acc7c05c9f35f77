"""Message texts read and replaced the same way whatever the wire format of the body.

Redaction and complexity routing need "every text the model will read", but an OpenAI
body keeps them in `messages[].content` (a string or parts), an Anthropic body has a
top-level `system` and content blocks, and a Responses body has `instructions` and
`input` (a string or items). This module is the one place that knows all three, so a
plugin calls `ctx.texts()` / `ctx.map_texts(fn)` and never branches on the format.
It runs only when a plugin asks: the pass-through path never decodes the whole body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = ["collect_texts", "map_texts"]

Fn = Callable[[str], str]


def collect_texts(payload: dict[str, Any], wire: str) -> list[str]:
    out: list[str] = []

    def keep(text: str) -> str:
        out.append(text)
        return text

    _walk(payload, wire, keep, tools=True)
    return out


def map_texts(ctx: RequestContext, fn: Fn, *, tools: bool = False) -> int:
    payload = ctx.payload()
    changed = [0]

    def apply(text: str) -> str:
        new = fn(text)
        if new != text:
            changed[0] += 1
        return new

    touched = _walk(payload, ctx.wire, apply, tools=tools)
    if changed[0]:  # nothing changed: the original bytes are forwarded as they are
        for field in touched:
            ctx.set_field(field, payload[field])
    return changed[0]


def _walk(payload: dict[str, Any], wire: str, fn: Fn, *, tools: bool) -> set[str]:
    """Apply `fn` to each text in place; return the top-level fields that hold texts."""
    if wire == "responses":
        return _responses(payload, fn, tools=tools)
    touched: set[str] = set()
    if wire == "anthropic" and "system" in payload:
        system = payload["system"]
        if isinstance(system, str):
            payload["system"] = fn(system)
        elif isinstance(system, list):
            _blocks(system, fn, tools=tools)
        touched.add("system")
    messages = payload.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = fn(content)
            elif isinstance(content, list):
                _blocks(content, fn, tools=tools)
            if tools and wire == "openai":
                for call in message.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                        function["arguments"] = fn(function["arguments"])
        touched.add("messages")
    return touched


def _blocks(blocks: list[Any], fn: Fn, *, tools: bool) -> None:
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            block["text"] = fn(block["text"])
        elif tools and kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                block["content"] = fn(content)
            elif isinstance(content, list):
                _blocks(content, fn, tools=tools)
        elif tools and kind == "tool_use" and isinstance(block.get("input"), dict):
            block["input"] = {
                k: fn(v) if isinstance(v, str) else v for k, v in block["input"].items()
            }


def _responses(payload: dict[str, Any], fn: Fn, *, tools: bool) -> set[str]:
    """`instructions`, and `input`: a string, or message items (a string or text parts),
    with tools also function-call arguments, custom-tool inputs and tool outputs."""
    touched: set[str] = set()
    if isinstance(payload.get("instructions"), str):
        payload["instructions"] = fn(payload["instructions"])
        touched.add("instructions")
    items = payload.get("input")
    if isinstance(items, str):
        payload["input"] = fn(items)
        return touched | {"input"}
    if not isinstance(items, list):
        return touched
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in (None, "message"):
            content = item.get("content")
            if isinstance(content, str):
                item["content"] = fn(content)
            elif isinstance(content, list):
                _parts(content, fn)
        elif tools and kind == "function_call" and isinstance(item.get("arguments"), str):
            item["arguments"] = fn(item["arguments"])
        elif tools and kind == "custom_tool_call" and isinstance(item.get("input"), str):
            item["input"] = fn(item["input"])
        elif tools and kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if isinstance(output, str):
                item["output"] = fn(output)
            elif isinstance(output, list):
                _parts(output, fn)
    return touched | {"input"}


def _parts(parts: list[Any], fn: Fn) -> None:
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            continue
        if part.get("type") in ("input_text", "output_text"):
            part["text"] = fn(part["text"])
