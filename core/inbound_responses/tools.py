"""The tools of a Responses request as canonical function tools, and back.

Function tools are carried as they are; the function and custom tools inside
`namespace` groups are flattened under their own names (`namespace__name` only when two
would clash), and `Origin` remembers what each canonical name stood for, so an answer
calls the client's own tool in its namespace; custom (free-form) tools become functions
taking one string `input`, their grammar in the description. Built-in tools are
dropped and noted once in the log. Pure: no I/O besides that one log line per kind.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ..errors import GatewayError
from ..logging import get_logger

__all__ = ["Origin", "Tools", "bad", "field_error", "note", "tool_choice"]

_noted: set[str] = set()  # what was dropped, logged once per process


class Origin(msgspec.Struct, frozen=True):
    """What a canonical tool name stands for in the client's Responses request."""

    kind: Literal["function", "custom"]
    name: str
    namespace: str | None = None


class _FunctionTool(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _CustomTool(msgspec.Struct):
    name: str
    description: str | None = None
    format: dict[str, Any] | None = None


class _Namespace(msgspec.Struct):
    name: str
    tools: list[dict[str, Any]]
    description: str | None = None


def bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, "invalid_request_error", message, param=param)


def field_error(exc: msgspec.MsgspecError, where: str) -> GatewayError:
    """A msgspec error inside one item, naming the field under `where`."""
    text = str(exc)
    message, _, path = text.partition(" - at `$")
    param = where + path.rstrip("`")
    if message.startswith("Object missing required field `"):
        field = message.split("`")[1]
        return bad(f"missing required field `{param}.{field}`", f"{param}.{field}")
    return bad(f"invalid field `{param}`: {message}", param)


def note(what: str) -> None:
    if what not in _noted:
        _noted.add(what)
        get_logger().info("responses_not_carried", dropped=what)


# -- tools -----------------------------------------------------------------------------


class Tools:
    """The client's tools flattened into canonical function tools, with their origins."""

    def __init__(self) -> None:
        self.entries: list[tuple[Origin, Any]] = []  # (origin, _FunctionTool | _CustomTool)
        self.names: dict[str, Origin] = {}
        self.by_origin: dict[tuple[str | None, str], str] = {}

    def add(self, tools: list[dict[str, Any]], where: str, namespace: str | None = None) -> None:
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            spot = f"{where}[{i}]"
            try:
                if kind == "function":
                    fn = msgspec.convert(tool, _FunctionTool)
                    self.entries.append((Origin("function", fn.name, namespace), fn))
                elif kind == "custom":
                    custom = msgspec.convert(tool, _CustomTool)
                    self.entries.append((Origin("custom", custom.name, namespace), custom))
                elif kind == "namespace" and namespace is None:
                    group = msgspec.convert(tool, _Namespace)
                    self.add(group.tools, spot + ".tools", group.name)
                else:
                    note(f"built-in tool {kind!r}")
            except msgspec.ValidationError as exc:
                raise field_error(exc, spot) from None

    def canonical(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for origin, _ in self.entries:
            counts[origin.name] = counts.get(origin.name, 0) + 1
        out: list[dict[str, Any]] = []
        for origin, tool in self.entries:
            name = origin.name
            if counts[name] > 1 and origin.namespace:
                name = f"{origin.namespace}__{name}"
            if name in self.names:
                continue  # declared twice: once is enough
            self.names[name] = origin
            self.by_origin[(origin.namespace, origin.name)] = name
            out.append({"type": "function", "function": _function(name, origin, tool)})
        return out

    def name_of(self, name: str, namespace: str | None) -> str:
        found = self.by_origin.get((namespace, name))
        if found is not None:
            return found
        return f"{namespace}__{name}" if namespace else name


def _function(name: str, origin: Origin, tool: Any) -> dict[str, Any]:
    if isinstance(tool, _FunctionTool):
        fn: dict[str, Any] = {"name": name}
        if tool.description:
            fn["description"] = tool.description
        fn["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        if tool.strict:
            fn["strict"] = True
        return fn
    description = tool.description or ""
    grammar = tool.format or {}
    if grammar.get("type") == "grammar" and grammar.get("definition"):
        syntax = grammar.get("syntax", "")
        description += (
            f"\n\nThe `input` is free-form text following this {syntax} grammar:\n"
            f"{grammar['definition']}"
        )
    text = {"type": "string", "description": "the tool's free-form input"}
    parameters = {
        "type": "object",
        "properties": {"input": text},
        "required": ["input"],
        "additionalProperties": False,
    }
    return {"name": name, "description": description.strip(), "parameters": parameters}


def tool_choice(choice: Any, tools: Tools) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    kind = choice.get("type")
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        name = tools.name_of(choice["name"], choice.get("namespace"))
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        note("tool_choice allowed_tools (its tool list)")
        return "required" if choice.get("mode") == "required" else "auto"
    note(f"tool_choice {kind!r}")
    return "auto"
