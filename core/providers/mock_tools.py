"""The mock's tool calls: which tool it calls, and arguments valid for that tool's schema.

With `tools` in a request the mock calls one, so tool use can be shown without keys:
`tool_choice` naming a function calls that one, `"required"` the first tool, `"none"`
none; with `"auto"` (or none given) it calls the first tool unless the conversation has
had a tool result since the assistant last spoke, when it answers with text instead (so
an agent loop ends). Everything is derived from the request: the same request gets the
same call.

Arguments come from the tool's JSON Schema (`parameters`): `const`, `enum`, local `$ref`s,
`allOf` / `anyOf` / `oneOf`, type lists, object `properties` and `required`, array
`items` / `prefixItems` / `minItems` / `uniqueItems`, string `format` (date-time, date,
time, email, uri, uuid, ipv4, ipv6, hostname) and length bounds, number bounds and
`multipleOf`. A `pattern` is honoured only when one of a few plain candidates matches it.
Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .canonical import ToolCall, bad_request

__all__ = ["example_value", "mock_tool_call"]

_MAX_DEPTH = 12
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
    "idn-hostname": "example.com",
}


def _functions(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        return []
    found = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            found.append(function)
    return found


def _tool_result_since_assistant(messages: Any) -> bool:
    for message in reversed(messages if isinstance(messages, list) else []):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            return True
        if role == "assistant":
            return False
    return False


def _chosen(payload: dict[str, Any]) -> dict[str, Any] | None:
    functions = _functions(payload.get("tools"))
    choice = payload.get("tool_choice")
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = choice.get("function")
        name = wanted.get("name") if isinstance(wanted, dict) else None
        for function in functions:
            if function["name"] == name:
                return function
        raise bad_request(
            f"tool_choice names a tool that is not in `tools`: {name!r}", "tool_choice"
        )
    if choice == "required" or not _tool_result_since_assistant(payload.get("messages")):
        return functions[0]
    return None


def mock_tool_call(payload: dict[str, Any], call_id: str) -> ToolCall | None:
    """The call the mock makes for this request (None: it answers with text)."""
    import msgspec

    function = _chosen(payload)
    if function is None:
        return None
    parameters = function.get("parameters")
    schema = parameters if isinstance(parameters, dict) else {"type": "object"}
    arguments = example_value(schema)
    if not isinstance(arguments, dict):
        arguments = {}
    return ToolCall(call_id, function["name"], msgspec.json.encode(arguments).decode())


def example_value(schema: Any, root: Any = None, index: int = 0, depth: int = 0) -> Any:
    """A value valid for `schema`; `index` varies scalars (distinct array items)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return {} if depth == 0 else None
    if "$ref" in schema:
        return example_value(_resolve(schema["$ref"], root), root, index, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[index % len(enum)]
    if isinstance(schema.get("allOf"), list):
        return example_value(_merged(schema, root), root, index, depth + 1)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return example_value(_preferred(options), root, index, depth + 1)
    kind = _type(schema)
    if kind == "object" or (kind is None and depth == 0):  # tool arguments are an object
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, depth)
    if kind == "string":
        return _string(schema, index)
    if kind in ("integer", "number"):
        return _number(schema, index, kind == "integer")
    if kind == "boolean":
        return index % 2 == 0
    if kind == "null":
        return None
    return "example"


def _resolve(ref: Any, root: Any) -> Any:
    """A local reference (`#/$defs/X`, `#/definitions/X`, `#`); anything else is `{}`."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return {}
    node = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node


def _merged(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    """`allOf` as one schema: properties and required united, other keys the last's."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = _resolve(part["$ref"], root) if isinstance(part, dict) and "$ref" in part else part
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged[key] = value
    return merged


def _preferred(options: list[Any]) -> Any:
    """The first option that is not just null (a nullable field gets a real value)."""
    for option in options:
        if not (isinstance(option, dict) and option.get("type") == "null"):
            return option
    return options[0]


def _type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        real = [k for k in kind if k != "null"]
        kind = real[0] if real else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema or "minItems" in schema:
        return "array"
    if {"minLength", "maxLength", "pattern", "format"} & schema.keys():
        return "string"
    if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & schema.keys():
        return "number"
    return None


def _object(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = [r for r in schema.get("required") or [] if isinstance(r, str)]
    # Every listed property (a fuller demo), unless a property count limit says otherwise.
    names = list(properties) if "maxProperties" not in schema else []
    names += [r for r in required if r not in names]
    return {name: example_value(properties.get(name, {}), root, 0, depth + 1) for name in names}


def _array(schema: dict[str, Any], root: Any, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    items = schema.get("items")
    low = schema.get("minItems")
    count = max(low if isinstance(low, int) else 1, len(prefix))
    high = schema.get("maxItems")
    if isinstance(high, int):
        count = min(count, high)
    if items is False:
        count = min(count, len(prefix))
    out = []
    for i in range(count):
        item = prefix[i] if i < len(prefix) else items
        out.append(example_value(item if isinstance(item, dict) else {}, root, i, depth + 1))
    return out


def _string(schema: dict[str, Any], index: int) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]  # a format wins over length bounds and distinctness
    suffix = str(index) if index else ""
    candidates = ["example" + suffix, "example", "a" + suffix, "A" + suffix, "0" + suffix]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            matches = [c for c in candidates if re.search(pattern, c)]
        except re.error:
            matches = []
        candidates = matches or candidates
    value = candidates[0]
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        value += "x" * (low - len(value))
    if isinstance(high, int) and len(value) > high:
        value = value[:high]
    return value


def _num(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(schema: dict[str, Any], index: int, integer: bool) -> int | float:
    lo, hi = _num(schema.get("minimum")), _num(schema.get("maximum"))
    above, below = _num(schema.get("exclusiveMinimum")), _num(schema.get("exclusiveMaximum"))
    lo_open = hi_open = False
    if above is not None and (lo is None or above >= lo):
        lo, lo_open = above, True
    if below is not None and (hi is None or below <= hi):
        hi, hi_open = below, True
    if integer:  # the integer bounds, both inclusive
        if lo is not None:
            lo, lo_open = (math.floor(lo) + 1 if lo_open else math.ceil(lo)), False
        if hi is not None:
            hi, hi_open = (math.ceil(hi) - 1 if hi_open else math.floor(hi)), False

    def fits(v: float) -> bool:
        above_low = lo is None or (v > lo if lo_open else v >= lo)
        return above_low and (hi is None or (v < hi if hi_open else v <= hi))

    candidates: list[float] = [index]
    if lo is not None:
        candidates += [lo + index, lo + 1]
    if hi is not None:
        candidates += [hi, hi - 1]
    if lo is not None and hi is not None:
        candidates.append((lo + hi) / 2 if not integer else (lo + hi) // 2)
    value = next((v for v in candidates if fits(v)), candidates[0])
    step = _num(schema.get("multipleOf"))
    if step is not None and step > 0:
        up, down = math.ceil(value / step) * step, math.floor(value / step) * step
        value = next((v for v in (up, down) if fits(v)), up)
    if integer or float(value).is_integer():
        return int(value)
    return value
