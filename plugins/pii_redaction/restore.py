"""The way back for `tokenize`: the placeholders a model repeats are replaced by the
user's own values, in a complete answer and in a stream whose chunks may split a
placeholder anywhere.

Only placeholders this request handed out are restored (anything else that looks like
one is text). Inside JSON text (OpenAI `function.arguments`, Anthropic `partial_json`)
a value is restored JSON-escaped, so the tool arguments stay valid JSON. Every wire format
the hooks see is handled: OpenAI chat chunks, and on a native pass-through Anthropic's
events and OpenAI's Responses events.

Streams: an event is decoded only when it may hold a placeholder (`[` and a capital
letter) or a held-back tail is waiting. For each text field (a choice's content, a tool
call's arguments, an Anthropic content block), a tail that could still become a
placeholder (`[EM`) is held back and put in front of that field's next piece; it is
flushed when the field ends (finish_reason, content_block_stop, [DONE], the end of the
stream), so nothing is ever lost or reordered, and only such a tail is ever buffered.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from .actions import PLACEHOLDER, Vault

__all__ = ["StreamRestorer", "restore_body"]

_decode = msgspec.json.Decoder(dict[str, Any]).decode
# An event may hold (the start of) a placeholder: `[` then a capital, or `[` closing a
# string (`..., call ["`). JSON's own arrays (`"choices":[{`) do not match.
_MAYBE = re.compile(rb'\[[A-Z"]')
_encode = msgspec.json.Encoder().encode
_JSON_TEXT_KEYS = frozenset({"arguments", "partial_json"})


class _Values:
    """The vault's values, plain and JSON-escaped, and a restore function for each."""

    __slots__ = ("escaped", "placeholders", "plain")

    def __init__(self, vault: Vault) -> None:
        self.plain = vault.by_placeholder
        self.escaped = {k: _encode(v)[1:-1].decode() for k, v in self.plain.items()}
        self.placeholders = tuple(self.plain)

    def restore(self, text: str, json_text: bool) -> str:
        if "[" not in text:
            return text
        values = self.escaped if json_text else self.plain
        return PLACEHOLDER.sub(lambda m: values.get(m.group(), m.group()), text)

    def could_start(self, tail: str) -> bool:
        """`tail` (from a `[` to the end, no `]`) may be the start of a placeholder."""
        return any(p.startswith(tail) for p in self.placeholders)


def restore_body(body: bytes, vault: Vault) -> bytes | None:
    """A complete answer (any JSON document) with every placeholder restored; None when
    it holds none (the body is then left as it is, byte for byte)."""
    if b"[" not in body or not any(p.encode() in body for p in vault.by_placeholder):
        return None
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    return _encode(_walk(doc, _Values(vault), False))


def _walk(node: Any, values: _Values, json_text: bool) -> Any:
    if isinstance(node, str):
        return values.restore(node, json_text)
    if isinstance(node, dict):
        return {k: _walk(v, values, k in _JSON_TEXT_KEYS) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, values, False) for v in node]
    return node


def _events(item: bytes) -> list[bytes]:
    """An item of a stream holds whole events, each ending in a blank line."""
    if item.count(b"\n\n") <= 1:
        return [item]
    parts = item.split(b"\n\n")
    return [p + b"\n\n" for p in parts[:-1] if p] + ([parts[-1]] if parts[-1] else [])


def _fields(event: bytes) -> tuple[bytes | None, bytes | None]:
    """(event name, data) of one event; data None when the event has none."""
    name: bytes | None = None
    data: bytes | None = None
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, data


class StreamRestorer:
    """Wraps one stream (`wire`: "openai" chunks, or on a native pass-through Anthropic's
    events or OpenAI's Responses events)."""

    def __init__(self, vault: Vault, wire: str) -> None:
        self.values = _Values(vault)
        self.wire = wire
        self.anthropic = wire == "anthropic"
        self.pending: dict[tuple[Any, ...], str] = {}
        self._head: dict[str, Any] = {}  # id, model... of the last OpenAI chunk
        # Responses: each delta field's last event, the template of a flushed tail.
        self._deltas: dict[tuple[Any, ...], dict[str, Any]] = {}

    async def wrap(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        # The core closes every layer (this one, then `stream`) when the stream ends.
        maybe = _MAYBE.search
        async for item in stream:
            if not self.pending and maybe(item) is None:
                yield item
                continue
            out: list[bytes] = []
            for event in _events(item):
                out.extend(self._event(event))
            if out:
                yield b"".join(out)
        rest = self._flush_all()
        if rest:
            yield rest

    # -- one field ---------------------------------------------------------------------
    def _feed(self, key: tuple[Any, ...], piece: str, json_text: bool) -> str:
        text = self.pending.pop(key, "") + piece
        at = text.rfind("[")
        if at >= 0 and "]" not in text[at:] and self.values.could_start(text[at:]):
            self.pending[key] = text[at:]
            text = text[:at]
        return self.values.restore(text, json_text)

    def _take(self, key: tuple[Any, ...], json_text: bool) -> str:
        """A held-back tail that will not grow any more: restored as far as it goes."""
        return self.values.restore(self.pending.pop(key, ""), json_text)

    # -- events ----------------------------------------------------------------------
    def _event(self, event: bytes) -> list[bytes]:
        if not self.pending and _MAYBE.search(event) is None:
            return [event]
        name, data = _fields(event)
        if data is None:
            return [event]
        if self.anthropic:
            return self._anthropic(event, name, data)
        if self.wire == "responses":
            return self._responses(event, data)
        if data == b"[DONE]":
            return [self._flush_all(), event]
        return self._openai(event, data)

    def _openai(self, event: bytes, data: bytes) -> list[bytes]:
        try:
            doc = _decode(data)
        except msgspec.DecodeError:
            return [event]
        self._head = {k: doc[k] for k in ("id", "object", "created", "model") if k in doc}
        for choice in doc.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            i = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            content = delta.get("content")
            if isinstance(content, str):
                delta["content"] = self._feed(("c", i), content, False)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    key = ("t", i, call.get("index", 0))
                    function["arguments"] = self._feed(key, function["arguments"], True)
            if choice.get("finish_reason") is not None:
                self._flush_choice(i, delta)
        return [b"data: " + _encode(doc) + b"\n\n"]

    def _flush_choice(self, i: Any, delta: dict[str, Any]) -> None:
        """Put what choice `i` still holds into its last delta."""
        held = self._take(("c", i), False)
        if held:
            delta["content"] = (delta.get("content") or "") + held
        for key in [k for k in self.pending if k[0] == "t" and k[1] == i]:
            held = self._take(key, True)
            calls = delta.setdefault("tool_calls", [])
            for call in calls:
                if call.get("index", 0) == key[2]:
                    function = call.setdefault("function", {})
                    function["arguments"] = (function.get("arguments") or "") + held
                    break
            else:
                calls.append({"index": key[2], "function": {"arguments": held}})

    def _anthropic(self, event: bytes, name: bytes | None, data: bytes) -> list[bytes]:
        if name == b"content_block_delta":
            try:
                doc = _decode(data)
            except msgspec.DecodeError:
                return [event]
            delta = doc.get("delta")
            if not isinstance(delta, dict):
                return [event]
            i = doc.get("index", 0)
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                delta["text"] = self._feed(("c", i), delta["text"], False)
                if not delta["text"]:
                    return []
            elif delta.get("type") == "input_json_delta" and isinstance(
                delta.get("partial_json"), str
            ):
                delta["partial_json"] = self._feed(("t", i), delta["partial_json"], True)
                if not delta["partial_json"]:
                    return []
            return [_anthropic_event(b"content_block_delta", doc)]
        if name == b"content_block_stop":
            try:
                i = _decode(data).get("index", 0)
            except msgspec.DecodeError:
                return [event]
            return [*self._anthropic_flush(i), event]
        if name in (b"message_delta", b"message_stop"):
            return [*self._anthropic_flush(None), event]
        return [event]

    def _anthropic_flush(self, index: Any) -> list[bytes]:
        out = []
        for key in [k for k in self.pending if index is None or k[1] == index]:
            kind, i = key
            held = self._take(key, kind == "t")
            if not held:
                continue
            delta = (
                {"type": "text_delta", "text": held}
                if kind == "c"
                else {"type": "input_json_delta", "partial_json": held}
            )
            out.append(
                _anthropic_event(
                    b"content_block_delta",
                    {"type": "content_block_delta", "index": i, "delta": delta},
                )
            )
        return out

    def _responses(self, event: bytes, data: bytes) -> list[bytes]:
        """OpenAI's Responses events: `*.delta` events carry pieces of a text (output
        text, function-call arguments as JSON text, custom tool input); every other event
        (the `*.done` ones, the item, the whole response at the end) holds complete texts,
        restored where they stand, after what the deltas of its item still held."""
        try:
            doc = _decode(data)
        except msgspec.DecodeError:
            return [event]
        kind = doc.get("type")
        if not isinstance(kind, str):
            return [event]
        if kind.endswith(".delta") and isinstance(doc.get("delta"), str):
            key = ("r", doc.get("output_index"), doc.get("content_index"), kind)
            json_text = kind == "response.function_call_arguments.delta"
            doc["delta"] = self._feed(key, doc["delta"], json_text)
            self._deltas[key] = {k: v for k, v in doc.items() if k != "delta"}
            return [_named_event(kind, doc)]  # kept even when empty: sequence numbers stay
        index = doc.get("output_index")
        out = self._responses_flush(index if index is not None else _ALL)
        out.append(_named_event(kind, _walk(doc, self.values, False)))
        return out

    def _responses_flush(self, index: Any) -> list[bytes]:
        out = []
        for key in [k for k in self.pending if k[0] == "r" and (index is _ALL or k[1] == index)]:
            kind = key[3]
            held = self._take(key, kind == "response.function_call_arguments.delta")
            if held:
                out.append(_named_event(kind, {**self._deltas.get(key, {}), "delta": held}))
        return out

    def _flush_all(self) -> bytes:
        """Everything still held, as events of the stream's own format."""
        if not self.pending:
            return b""
        if self.anthropic:
            return b"".join(self._anthropic_flush(None))
        if self.wire == "responses":
            return b"".join(self._responses_flush(_ALL))
        chunks = []
        for i in sorted({k[1] for k in self.pending}, key=str):
            delta: dict[str, Any] = {}
            self._flush_choice(i, delta)
            doc = {
                **self._head,
                "choices": [{"index": i, "delta": delta, "finish_reason": None}],
            }
            chunks.append(b"data: " + _encode(doc) + b"\n\n")
        return b"".join(chunks)


def _anthropic_event(name: bytes, doc: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + _encode(doc) + b"\n\n"


def _named_event(name: str, doc: dict[str, Any]) -> bytes:
    return _anthropic_event(name.encode(), doc)


_ALL = object()  # flush every field, not one output item's
