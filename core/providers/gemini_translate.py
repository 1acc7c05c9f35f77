"""Canonical (OpenAI chat completions) requests into Gemini `generateContent` requests.

Pure functions on decoded JSON: no I/O, no context. A request Gemini cannot express
raises `GatewayError(400)` naming the field, before anything is sent.
"""

from __future__ import annotations

from typing import Any

import msgspec

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

__all__ = ["FINISH_REASONS", "gemini_request"]


# Gemini finishReason -> OpenAI finish_reason (anything else is "stop").
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}

# JSON Schema keywords Gemini's OpenAPI-subset `parameters` rejects.
_UNSUPPORTED_SCHEMA_KEYS = frozenset({"$schema", "additionalProperties", "strict", "$id"})

_decode_any = msgspec.json.Decoder().decode


def _schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _schema(v) for k, v in schema.items() if k not in _UNSUPPORTED_SCHEMA_KEYS}
    if isinstance(schema, list):
        return [_schema(v) for v in schema]
    return schema


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("content must be a string or a list of parts", where)
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_image(url, f"{where}[{i}]"))
        else:
            raise bad_request(
                f"content part type {kind!r} is not supported by this provider", where
            )
    return parts


def _image(url: Any, where: str) -> dict[str, Any]:
    inline = data_url(url, where)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    mime = "image/png" if url.lower().endswith(".png") else "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _tool_response(content: Any) -> dict[str, Any]:
    if isinstance(content, list):
        content = "".join(p["text"] for p in content if isinstance(p, dict) and is_text_part(p))
    if isinstance(content, str):
        try:
            value = _decode_any(content)
        except msgspec.DecodeError:
            value = None
        if isinstance(value, dict):
            return value
        return {"content": content}
    return {"content": content}


def _contents(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`(system parts, contents)`; turns of one role in a row are merged."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name (Gemini answers by name)

    for where, role, message in messages_of(payload):
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_parts(content, where + ".content"))
        elif role == "user":
            add_turn(contents, "user", "parts", _parts(content, where + ".content"))
        elif role == "assistant":
            parts = _parts(content, where + ".content")
            for call in tool_calls_of(message, where):
                call_names[call.id] = call.name
                parts.append(
                    {"functionCall": {"name": call.name, "args": parse_arguments(call.arguments)}}
                )
            add_turn(contents, "model", "parts", parts)
        elif role == "tool":
            name = call_names.get(tool_call_id(message, where)) or message.get("name", "")
            if not name or not isinstance(name, str):
                raise bad_request(
                    "tool result for an unknown tool_call_id", where + ".tool_call_id"
                )
            response = {"functionResponse": {"name": name, "response": _tool_response(content)}}
            add_turn(contents, "user", "parts", [response])
    return system, contents


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        config: dict[str, Any] = {"mode": "AUTO"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name", "")]}
    else:
        raise bad_request("unsupported tool_choice", "tool_choice")
    return {"functionCallingConfig": config}


_GENERATION_KEYS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)


def gemini_request(payload: dict[str, Any]) -> dict[str, Any]:
    """The Gemini generateContent request for a canonical chat-completions payload (the
    model and the stream flag go in the URL, not the body)."""
    system, contents = _contents(payload)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    for ours, theirs in _GENERATION_KEYS:
        if payload.get(ours) is not None:
            config[theirs] = payload[ours]
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stop = stop_sequences(payload.get("stop"))
    if stop:
        config["stopSequences"] = stop
    response_format = payload.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        config["responseMimeType"] = "application/json"
        json_schema = response_format.get("json_schema")
        schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
        if schema is not None:
            config["responseSchema"] = _schema(schema)
    if config:
        body["generationConfig"] = config
    tools = payload.get("tools")
    if tools:
        declarations = []
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not function.get("name"):
                raise bad_request("only function tools with a name are supported", f"tools[{i}]")
            declaration: dict[str, Any] = {"name": function["name"]}
            if function.get("description"):
                declaration["description"] = function["description"]
            if function.get("parameters"):
                declaration["parameters"] = _schema(function["parameters"])
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(payload.get("tool_choice"))
    if tool_config is not None:
        body["toolConfig"] = tool_config
    return body
