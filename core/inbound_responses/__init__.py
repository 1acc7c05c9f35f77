"""`POST /v1/responses`: OpenAI's Responses API as an inbound format (Codex CLI, the Agents
SDK, `client.responses.create`).

The request is decoded lightly (model, input, stream, store, previous_response_id,
metadata; a bad field is a 400 naming it, in OpenAI's error shape) and keeps the client's
bytes (`ctx.wire == "responses"`). Served by an `openai` or `azure` provider it is not
translated at all: the bytes go upstream and the provider's Response object and events
come back untouched (providers/openai_responses.py reads the usage). For any other
provider core/wire.py translates it (inbound_responses.request.py, which documents what
is carried, dropped and refused) and the canonical answer comes back as a Response
object, a canonical stream as the Responses event sequence (inbound_responses.stream.py).

Conversation state: `store: false` is honoured everywhere (Codex CLI sends it with the
whole history each turn). On the native path `previous_response_id` and
`GET`/`DELETE /v1/responses/{id}` are OpenAI's business. On a translated path the
gateway keeps what OpenAI would (store.py): the answer's id starts with
`resp_gw`, and a later request naming it as `previous_response_id` has the stored turns
put back in front of its `input` before anything else sees it, whichever provider then
serves it. A `previous_response_id` the gateway does not have, or another tenant's, is a
404; one from OpenAI is passed to an `openai` provider and is a 404 anywhere else.

The caller's key (`authorization`) is the gateway's business: never read or sent here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ..context import ChatHead, Endpoint, Inbound, RequestContext
from ..errors import GatewayError, openai_error_body
from ..inbound import Decoded, invalid_request
from ..logging import get_logger
from ..sse import format_event
from .answer import (
    call_item,
    error_object,
    item_id,
    message_item,
    outcome,
    response_object,
)
from .request import TURN, Turn, turn_of
from .store import ResponsesStore, is_gateway_id, tenant_of
from .stream import ResponsesStream

__all__ = ["OpenAIResponses", "ResponsesHead"]

_encode = msgspec.json.Encoder().encode


class ResponsesHead(ChatHead):
    """The head the core reads (`model`, `stream`, `metadata`; `messages` holds the raw
    `input`), and what the format itself needs before routing."""

    input: msgspec.Raw = None  # type: ignore[assignment]
    store: bool | None = None
    previous_response_id: str | None = None


class _Head(msgspec.Struct):
    model: str
    input: msgspec.Raw = None  # type: ignore[assignment]
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: msgspec.Raw = None  # type: ignore[assignment]
    max_output_tokens: Any = None  # for rate_limit and budget (RequestContext.output_cap)


class _Function(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class _Call(msgspec.Struct):
    id: str = ""
    function: _Function = msgspec.field(default_factory=_Function)


class _Message(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_Call] | None = None


class _Choice(msgspec.Struct):
    message: _Message = msgspec.field(default_factory=_Message)
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []


_decode_head = msgspec.json.Decoder(_Head).decode
_decode_completion = msgspec.json.Decoder(_Completion).decode
_decode_items = msgspec.json.Decoder(list[Any]).decode
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class OpenAIResponses:
    """`POST /v1/responses`."""

    name: Inbound = "responses"
    endpoint: Endpoint = "chat"
    stream_headers = _SSE_HEADERS

    def __init__(self, store: ResponsesStore) -> None:
        self.store = store
        self.logger = get_logger()

    # -- the request -----------------------------------------------------------------------
    def decode(self, raw: bytes, headers: dict[str, str]) -> Decoded:
        try:
            head = _decode_head(raw)
        except msgspec.MsgspecError as exc:
            raise invalid_request(exc) from None
        given = head.input
        if given is not None and memoryview(given)[:1].tobytes() not in (b'"', b"["):
            raise GatewayError(
                400,
                "invalid_request_error",
                "`input` must be a string or an array of items",
                param="input",
            )
        decoded = ResponsesHead(
            model=head.model,
            messages=[given] if given is not None else [],
            stream=head.stream,
            metadata=head.metadata,
            input=given,
            store=head.store,
            previous_response_id=head.previous_response_id,
            max_tokens=head.max_output_tokens,
        )
        return Decoded(decoded, raw, head.stream, False, "responses")

    async def resolve(self, ctx: RequestContext) -> None:
        """Before routing: this turn's state, and a conversation the gateway keeps put
        back in front of `input` (so native and translated attempts both see it whole)."""
        head = ctx.body
        assert isinstance(head, ResponsesHead)
        previous = head.previous_response_id
        turn = ctx.state[TURN] = Turn(previous_id=previous, store=head.store is not False)
        given = head.input
        if turn.store and given is not None:
            data = bytes(given)
            turn.items = data if data[:1] == b"[" else _encode(_user_item(data))
        if previous and is_gateway_id(previous):
            history: list[Any] = []
            for items in await self.store.chain(tenant_of(ctx), previous):
                history.extend(_decode_items(items))
            current = ctx.payload().get("input")
            if isinstance(current, str):
                current = _user_item(_encode(current))
            ctx.set_field("input", history + list(current or []))
            ctx.set_field("previous_response_id", None)

    # -- the answer ------------------------------------------------------------------------
    def render(self, ctx: RequestContext, body: bytes) -> bytes:
        if ctx.wire == "responses":
            return body  # the provider's own Response object, untouched
        turn = turn_of(ctx)
        completion = _decode_completion(body)
        choice = completion.choices[0] if completion.choices else _Choice()
        message = choice.message
        output: list[dict[str, Any]] = []
        if message.content or not message.tool_calls:
            ident = item_id(turn, "msg", 0)
            output.append(message_item(ident, message.content or ""))
        for call in message.tool_calls or ():
            ident = item_id(turn, "fc", len(output))
            function = call.function
            output.append(call_item(ident, call.id, function.name, function.arguments, turn.names))
        status, incomplete = outcome(choice.finish_reason)
        doc = response_object(
            ctx, turn, status=status, output=output, usage=ctx.usage, incomplete=incomplete
        )
        answer = _encode(doc)
        turn.answer = (answer, _encode(output))
        return answer

    async def remember(self, ctx: RequestContext) -> None:
        """After a translated answer is rendered, before it is sent: keep the turn."""
        turn = ctx.state.get(TURN)
        if ctx.wire != "responses" and turn is not None and turn.store and turn.answer:
            answer, output = turn.answer
            await self._keep(ctx, turn, answer, output)

    async def _save(
        self, ctx: RequestContext, turn: Turn, answer: bytes, output: list[dict[str, Any]]
    ) -> None:
        await self._keep(ctx, turn, answer, _encode(output))

    async def _keep(self, ctx: RequestContext, turn: Turn, answer: bytes, output: bytes) -> None:
        items = _join_arrays(turn.items, output)
        try:
            await self.store.save(
                response_id=turn.id,
                tenant=tenant_of(ctx),
                previous_id=turn.previous_id if turn.previous_id else None,
                created_at=turn.created_at,
                items=items,
                response=answer,
            )
        except Exception as exc:  # the answer still goes out; chaining to it will 404
            self.logger.error("responses_store_failed", request_id=ctx.request_id, error=repr(exc))

    def render_stream(
        self, ctx: RequestContext, events: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        if ctx.wire == "responses":
            return events  # the provider's own events, relayed as they arrive
        turn = turn_of(ctx)
        return ResponsesStream(ctx, turn, self._save if turn.store else None).run(events)

    # -- errors --------------------------------------------------------------------------
    def error_body(self, err: GatewayError) -> bytes:
        return openai_error_body(err)

    def stream_error(self, err: GatewayError) -> bytes:
        """A failure the stream renderers did not report themselves (a `wrap_stream`
        plugin failing on the native path): an `error` event, numbered 0 as the number
        of the provider's last event is not known here."""
        doc = {
            "type": "error",
            "code": error_object(err)["code"],
            "message": err.message,
            "param": err.param,
            "sequence_number": 0,
        }
        return format_event(_encode(doc), "error")


def _user_item(text_json: bytes) -> list[dict[str, Any]]:
    """A string `input` as the one user message item it stands for."""
    text = msgspec.json.decode(text_json)
    return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]


def _join_arrays(first: bytes, second: bytes) -> bytes:
    """Two JSON arrays as one, without decoding either."""
    a, b = first.strip(), second.strip()
    if a == b"[]":
        return b
    if b == b"[]":
        return a
    return a[:-1] + b"," + b[1:]
