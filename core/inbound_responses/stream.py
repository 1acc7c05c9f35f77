"""Canonical `chat.completion.chunk` events in, the Responses API's event sequence out.

The order OpenAI documents, each event with its `event:` line and a `sequence_number`
counting from 0: `response.created`, `response.in_progress`, then per output item
`response.output_item.added`; for a message `response.content_part.added`, the
`response.output_text.delta`s, `response.output_text.done`, `response.content_part.done`;
for a function call the `response.function_call_arguments.delta`s and `.done`; for a
custom tool `response.custom_tool_call_input.delta` and `.done` (its input arrives as one
JSON argument, so it is sent whole when the call ends); `response.output_item.done`; and
last `response.completed`, or `response.incomplete` when the answer was cut at
`max_output_tokens` or filtered. One item is open at a time, as canonical streams send
them one after another.

A failure after the first event ends the stream with an `error` event and a
`response.failed` whose snapshot holds what was produced, and is raised on as
`ReportedInStream` so the core records it and adds nothing. The deltas, which are most
of the events, are built from byte templates rather than encoded dicts. Nothing here
blocks: the only await besides the upstream is the conversation's store write, made
before `response.completed` so a client chaining the next turn at once finds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from ..chunks import CanonicalCall, CanonicalChoice, CanonicalFunction, CanonicalMessage
from ..context import RequestContext
from ..errors import GatewayError, ReportedInStream, UpstreamError, scrub
from ..sse import EventSplitter, format_event, parse_event
from .answer import (
    call_item,
    custom_input,
    error_object,
    item_id,
    message_item,
    outcome,
    response_object,
)
from .request import Turn

__all__ = ["ResponsesStream", "Save"]

_encode = msgspec.json.Encoder().encode
Save = Callable[[RequestContext, Turn, bytes, list[dict[str, Any]]], Awaitable[None]]


_Function = CanonicalFunction
_Call = CanonicalCall
_Delta = CanonicalMessage
_Choice = CanonicalChoice


class _StreamError(msgspec.Struct):
    message: str = ""


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    error: _StreamError | None = None  # an OpenAI-format upstream's error event


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_TEXT_TAIL = b',"logprobs":[],"sequence_number":'


def _data(event: bytes) -> bytes:
    """An event's data: canonical events are one `data:` line (the fast case)."""
    if event.startswith(b"data: ") and event.find(b"\n", 6) == len(event) - 2:
        return event[6:-2]
    return parse_event(event)[1]


_ARGS_TAIL = b',"sequence_number":'


class ResponsesStream:
    """One translated stream; `run` is the async iterator of event bytes."""

    __slots__ = (
        "args",
        "call_id",
        "ctx",
        "finish",
        "ident",
        "kind",
        "name",
        "output",
        "prefix",
        "save",
        "seq",
        "started",
        "texts",
        "tool_index",
        "turn",
    )

    def __init__(self, ctx: RequestContext, turn: Turn, save: Save | None) -> None:
        self.ctx = ctx
        self.turn = turn
        self.save = save
        self.seq = 0
        self.started = False
        self.output: list[dict[str, Any]] = []  # finished items
        self.kind: str | None = None  # the open item: "message", "function_call", "custom"
        self.ident = ""
        self.prefix = b""  # the open item's delta event, up to its `"delta":`
        self.texts: list[str] = []
        self.args: list[str] = []
        self.call_id = ""
        self.name = ""
        self.tool_index: int | None = None
        self.finish: str | None = None

    async def run(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        splitter = EventSplitter()
        try:
            async for chunk in events:
                out: list[bytes] = []
                # Canonical streams come one whole event per chunk: the splitter only when not.
                end = len(chunk) - 2
                whole = end > 0 and chunk.find(b"\n\n") == end and not splitter.pending()
                for event in (chunk,) if whole else splitter.feed(chunk):
                    data = _data(event)
                    if not data or data == b"[DONE]":
                        continue
                    try:
                        parsed = _decode_chunk(data)
                    except msgspec.DecodeError:
                        continue
                    if parsed.error is not None:
                        if out:
                            yield b"".join(out)
                            out = []
                        message = scrub(parsed.error.message, [])
                        raise UpstreamError(
                            502,
                            "upstream_error",
                            f"the provider failed mid-stream: {message}",
                            retryable=False,
                        )
                    self._chunk(parsed, out)
                if out:
                    yield b"".join(out)
        except GatewayError as err:
            if isinstance(err, ReportedInStream):
                raise
            yield self._failed(err)
            raise ReportedInStream.of(err) from None
        yield await self._end()

    # -- events ---------------------------------------------------------------------------
    def _event(self, name: str, doc: dict[str, Any]) -> bytes:
        doc["sequence_number"] = self.seq
        self.seq += 1
        return format_event(_encode(doc), name)

    def _delta(self, fragment: str) -> bytes:
        seq = self.seq
        self.seq += 1
        tail = _TEXT_TAIL if self.kind == "message" else _ARGS_TAIL
        return b"%s%s%s%d}\n\n" % (self.prefix, _encode(fragment), tail, seq)

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(self.ctx, self.turn, status=status, **extra)

    def _start(self, out: list[bytes]) -> None:
        self.started = True
        for name in ("response.created", "response.in_progress"):
            snapshot = self._snapshot("in_progress", output=[], usage=None)
            out.append(self._event(name, {"type": name, "response": snapshot}))

    # -- items ----------------------------------------------------------------------------
    def _open(self, kind: str, out: list[bytes], call: _Call | None = None) -> None:
        self._close(out)
        index = len(self.output)
        self.kind = kind
        names = self.turn.names
        if call is None:
            self.ident = item_id(self.turn, "msg", index)
            item = message_item(self.ident, "", "in_progress")
            delta = "response.output_text.delta"
            fields = f'"item_id":"{self.ident}","output_index":{index},"content_index":0'
        else:
            function = call.function or _Function()
            self.call_id, self.name = call.id or "", function.name or ""
            self.tool_index = call.index
            if kind == "custom" or (self.name in names and names[self.name].kind == "custom"):
                self.kind = "custom"
            self.ident = item_id(self.turn, "ctc" if self.kind == "custom" else "fc", index)
            item = call_item(self.ident, self.call_id, self.name, "", names, "in_progress")
            delta = "response.function_call_arguments.delta"
            fields = f'"item_id":"{self.ident}","output_index":{index}'
        self.prefix = f'event: {delta}\ndata: {{"type":"{delta}",{fields},"delta":'.encode()
        added = {"type": "response.output_item.added", "output_index": index, "item": item}
        out.append(self._event("response.output_item.added", added))
        if call is None:
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            doc = {
                "type": "response.content_part.added",
                "item_id": self.ident,
                "output_index": index,
                "content_index": 0,
                "part": part,
            }
            out.append(self._event("response.content_part.added", doc))

    def _close(self, out: list[bytes]) -> None:
        kind = self.kind
        if kind is None:
            return
        index = len(self.output)
        where = {"item_id": self.ident, "output_index": index}
        if kind == "message":
            text = "".join(self.texts)
            self.texts = []
            name = "response.output_text.done"
            doc = {"type": name, **where, "content_index": 0, "text": text, "logprobs": []}
            out.append(self._event(name, doc))
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            name = "response.content_part.done"
            out.append(self._event(name, {"type": name, **where, "content_index": 0, "part": part}))
            item = message_item(self.ident, text)
        else:
            arguments = "".join(self.args)
            self.args = []
            item = call_item(self.ident, self.call_id, self.name, arguments, self.turn.names)
            if kind == "custom":
                text = custom_input(arguments)
                name = "response.custom_tool_call_input.delta"
                out.append(self._event(name, {"type": name, **where, "delta": text}))
                name = "response.custom_tool_call_input.done"
                out.append(self._event(name, {"type": name, **where, "input": text}))
            else:
                name = "response.function_call_arguments.done"
                doc = {"type": name, **where, "name": item["name"], "arguments": arguments}
                out.append(self._event(name, doc))
        done_item = {"type": "response.output_item.done", "output_index": index, "item": item}
        out.append(self._event("response.output_item.done", done_item))
        self.output.append(item)
        self.kind = None

    def _chunk(self, parsed: _Chunk, out: list[bytes]) -> None:
        if not self.started:
            self._start(out)
        if parsed.choices:
            choice = parsed.choices[0]
            delta = choice.delta
            if delta is not None:
                content = delta.content
                if content:
                    if self.kind != "message":
                        self._open("message", out)
                    self.texts.append(content)
                    out.append(self._delta(content))
                for call in delta.tool_calls or ():
                    new = call.index != self.tool_index or self.kind in (None, "message")
                    if new or (call.id and call.id != self.call_id):
                        self._open("function_call", out, call)
                    arguments = call.function.arguments if call.function else None
                    if arguments:
                        self.args.append(arguments)
                        if self.kind == "function_call":
                            out.append(self._delta(arguments))
            if choice.finish_reason:
                self.finish = choice.finish_reason

    async def _end(self) -> bytes:
        out: list[bytes] = []
        if not self.started:
            self._start(out)
        self._close(out)
        status, incomplete = outcome(self.finish)
        final = self._snapshot(
            status, output=self.output, usage=self.ctx.usage, incomplete=incomplete
        )
        if self.save is not None:
            await self.save(self.ctx, self.turn, _encode(final), self.output)
        name = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(name, {"type": name, "response": final}))
        return b"".join(out)

    def _failed(self, err: GatewayError) -> bytes:
        out: list[bytes] = []
        if not self.started:
            self._start(out)
        output = list(self.output)
        if self.kind is not None:  # the item being written when it failed, as it stood
            if self.kind == "message":
                partial = message_item(self.ident, "".join(self.texts), "incomplete")
            else:
                arguments = "".join(self.args)
                names = self.turn.names
                partial = call_item(
                    self.ident, self.call_id, self.name, arguments, names, "incomplete"
                )
            output.append(partial)
        error = error_object(err)
        doc = {"type": "error", "code": error["code"], "message": err.message, "param": None}
        out.append(self._event("error", doc))
        snapshot = self._snapshot("failed", output=output, usage=None, error=error)
        name = "response.failed"
        out.append(self._event(name, {"type": name, "response": snapshot}))
        return b"".join(out)
