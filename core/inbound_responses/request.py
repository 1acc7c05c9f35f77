"""The OpenAI Responses request, checked and translated into a canonical chat request.

Used only when the provider does not speak the Responses API itself (core/wire.py): an
`openai` or `azure` provider gets the client's bytes. Typed msgspec Structs per input
item, so a bad field is a 400 naming it (`input[3].call_id`); the translation is pure,
no I/O (a `previous_response_id` the gateway keeps was already inlined into `input`).

Carried: `instructions` and every `system` / `developer` message (joined, in order, into
one system prompt at the front, where every provider accepts it); `input` as a string or
items: user and assistant messages with `input_text`, `output_text`, `refusal` and
`input_image` parts (a URL or a data: URL), `function_call` / `function_call_output`,
`custom_tool_call` / `custom_tool_call_output`; function tools, the function and custom
tools inside `namespace` groups (flattened under their own names, `namespace__name` when
two would clash; answers name the namespace again) and in `additional_tools` items;
custom (free-form) tools as functions taking one string `input`, their grammar in the
description; `tool_choice`, `parallel_tool_calls`, `max_output_tokens`, `temperature`,
`top_p`, `text.format` (json_schema, json_object), `user` / `safety_identifier`;
`prompt_cache_key` becomes a `cache_control` breakpoint on the system prompt when the
target is Anthropic (OpenAI-format and Gemini targets cache prefixes by themselves).
Images inside tool outputs follow the tool results as a user message.

Dropped, and noted once in the log (not an error, as Codex CLI always sends them):
built-in tools (web_search, file_search, code_interpreter, image_generation, tool_search,
mcp, local_shell, shell, computer use...) and their call items in the history, reasoning
items (their encrypted content is only readable by OpenAI), `reasoning`, `include`,
`text.verbosity`, `truncation`, `service_tier`. Refused with a 400: `input_file` and
`input_audio` parts, images given as a `file_id`, `item_reference` items, `background`,
`conversation` and `prompt` (objects stored at OpenAI).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any, Literal

import msgspec

from ..context import RequestContext
from ..inbound import invalid_request
from .store import GATEWAY_PREFIX, not_found
from .tools import Origin, Tools, bad, field_error, note, tool_choice

__all__ = ["TURN", "Turn", "canonical_request", "translate", "turn_of"]

_encode = msgspec.json.Encoder().encode
TURN = "_responses"  # ctx.state key of the request's Turn


class Turn:
    """One `/v1/responses` request: its answer's id, what the answer echoes, and the
    tool names the translation chose (to name them back in the answer)."""

    __slots__ = ("answer", "created_at", "echo", "id", "items", "names", "previous_id", "store")

    def __init__(self, *, previous_id: str | None = None, store: bool = True) -> None:
        self.id = GATEWAY_PREFIX + os.urandom(16).hex()
        self.created_at = int(time.time())
        self.previous_id = previous_id
        self.store = store
        self.items = b"[]"  # this turn's input items (JSON), kept with the answer
        self.names: dict[str, Origin] = {}
        self.echo: dict[str, Any] = {}
        # The translated answer, once rendered: (Response object, output items), as JSON.
        self.answer: tuple[bytes, bytes] | None = None


def turn_of(ctx: RequestContext) -> Turn:
    turn: Turn | None = ctx.state.get(TURN)
    if turn is None:
        turn = ctx.state[TURN] = Turn()
    return turn


# -- the request -------------------------------------------------------------------------
class _InputText(msgspec.Struct, tag="input_text"):
    text: str


class _OutputText(msgspec.Struct, tag="output_text"):
    text: str


class _Refusal(msgspec.Struct, tag="refusal"):
    refusal: str


class _InputImage(msgspec.Struct, tag="input_image"):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class _InputFile(msgspec.Struct, tag="input_file"):
    pass


class _InputAudio(msgspec.Struct, tag="input_audio"):
    pass


_Part = _InputText | _OutputText | _Refusal | _InputImage | _InputFile | _InputAudio


class _Message(msgspec.Struct):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[_Part]


class _FunctionCall(msgspec.Struct):
    call_id: str
    name: str
    arguments: str
    namespace: str | None = None


class _CustomCall(msgspec.Struct):
    call_id: str
    name: str
    input: str
    namespace: str | None = None


class _CallOutput(msgspec.Struct):
    call_id: str
    output: str | list[_Part]


class _AdditionalTools(msgspec.Struct):
    tools: list[dict[str, Any]]


class _ItemHead(msgspec.Struct):
    type: str | None = None
    role: str | None = None


class _TextConfig(msgspec.Struct):
    format: dict[str, Any] | None = None


class _Request(msgspec.Struct):
    model: str
    input: msgspec.Raw = None  # type: ignore[assignment]  # a string or a list of items
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: _TextConfig | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    stream: bool = False
    store: bool | None = None
    metadata: dict[str, str] | None = None
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    truncation: str | None = None
    background: bool | None = None
    conversation: msgspec.Raw = None  # type: ignore[assignment]
    prompt: msgspec.Raw = None  # type: ignore[assignment]


_decode_request = msgspec.json.Decoder(_Request).decode
_decode_items = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_str = msgspec.json.Decoder(str).decode
_decode_head = msgspec.json.Decoder(_ItemHead).decode
_decode_message = msgspec.json.Decoder(_Message).decode
_decode_call = msgspec.json.Decoder(_FunctionCall).decode
_decode_custom_call = msgspec.json.Decoder(_CustomCall).decode
_decode_output = msgspec.json.Decoder(_CallOutput).decode
_decode_additional = msgspec.json.Decoder(_AdditionalTools).decode

_CALL_OUTPUTS = ("function_call_output", "custom_tool_call_output")
_STORED_ELSEWHERE = ("background", "conversation", "prompt")


# -- input items -------------------------------------------------------------------------
def _text_of(parts: str | list[_Part], where: str) -> str:
    if isinstance(parts, str):
        return parts
    texts: list[str] = []
    for i, part in enumerate(parts):
        if isinstance(part, _InputText | _OutputText):
            texts.append(part.text)
        elif isinstance(part, _Refusal):
            texts.append(part.refusal)
        else:
            raise bad("only text can be given here", f"{where}[{i}]")
    return "".join(texts)


def _image(part: _InputImage, where: str) -> dict[str, Any]:
    if not part.image_url:
        raise bad("images must be given as image_url (file_id is not supported)", where)
    image: dict[str, Any] = {"url": part.image_url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _user_parts(content: str | list[_Part], where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        spot = f"{where}[{i}]"
        if isinstance(part, _InputText | _OutputText):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, _Refusal):
            parts.append({"type": "text", "text": part.refusal})
        elif isinstance(part, _InputImage):
            parts.append(_image(part, spot))
        else:
            kind = "input_file" if isinstance(part, _InputFile) else "input_audio"
            raise bad(f"{kind} parts are not supported by this provider", spot + ".type")
    return parts


class _Conversation:
    """Canonical messages built item by item."""

    def __init__(self) -> None:
        self.system: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []  # from tool outputs, for after the results
        # Calls in the history, named once every tool is known (`additional_tools` items
        # may declare more): (the canonical call's function, its name, its namespace).
        self.unnamed: list[tuple[dict[str, Any], str, str | None]] = []

    def _flush(self) -> None:
        if self.images:
            text = {"type": "text", "text": "(images returned by the tool calls above)"}
            self.messages.append({"role": "user", "content": [text, *self.images]})
            self.images = []

    def _assistant(self) -> dict[str, Any]:
        last = self.messages[-1] if self.messages else None
        if last is None or last["role"] != "assistant":
            last = {"role": "assistant", "content": None}
            self.messages.append(last)
        return last

    def message(self, message: _Message, where: str) -> None:
        if message.role in ("system", "developer"):
            self.system.append(_text_of(message.content, where + ".content"))
            return
        self._flush()
        if message.role == "user":
            content = _user_parts(message.content, where + ".content")
            self.messages.append({"role": "user", "content": content})
        else:
            text = _text_of(message.content, where + ".content")
            last = self.messages[-1] if self.messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" not in last:
                last["content"] = (last["content"] or "") + text
            else:
                self.messages.append({"role": "assistant", "content": text})

    def call(self, call_id: str, name: str, namespace: str | None, arguments: str) -> None:
        self._flush()
        calls = self._assistant().setdefault("tool_calls", [])
        function = {"name": name, "arguments": arguments}
        calls.append({"id": call_id, "type": "function", "function": function})
        self.unnamed.append((function, name, namespace))

    def name_calls(self, tools: Tools) -> None:
        for function, name, namespace in self.unnamed:
            function["name"] = tools.name_of(name, namespace)

    def output(self, result: _CallOutput, where: str) -> None:
        if isinstance(result.output, str):
            text = result.output
        else:
            texts: list[str] = []
            for i, part in enumerate(result.output):
                spot = f"{where}.output[{i}]"
                if isinstance(part, _InputText | _OutputText):
                    texts.append(part.text)
                elif isinstance(part, _InputImage):
                    self.images.append(_image(part, spot))
                else:
                    raise bad("tool outputs may hold text and images only", spot)
            text = "".join(texts)
        self.messages.append({"role": "tool", "tool_call_id": result.call_id, "content": text})

    def finish(self) -> None:
        self._flush()


def _items(raw: msgspec.Raw) -> Iterator[tuple[int, bytes]]:
    try:
        items = _decode_items(raw)
    except msgspec.ValidationError:
        raise bad("`input` must be a string or an array of items", "input") from None
    for i, item in enumerate(items):
        yield i, bytes(item)


def _read_input(request: _Request, conversation: _Conversation, tools: Tools) -> None:
    raw = request.input
    if raw is None:
        return
    data = bytes(raw)
    if data.lstrip()[:1] == b'"':
        conversation.messages.append({"role": "user", "content": _decode_str(data)})
        return
    for i, item in _items(raw):
        where = f"input[{i}]"
        try:
            head = _decode_head(item)
            kind = head.type or ("message" if head.role else None)
            if kind == "message":
                conversation.message(_decode_message(item), where)
            elif kind == "function_call":
                call = _decode_call(item)
                conversation.call(call.call_id, call.name, call.namespace, call.arguments)
            elif kind == "custom_tool_call":
                custom = _decode_custom_call(item)
                arguments = _encode({"input": custom.input}).decode()
                conversation.call(custom.call_id, custom.name, custom.namespace, arguments)
            elif kind in _CALL_OUTPUTS:
                conversation.output(_decode_output(item), where)
            elif kind == "additional_tools":
                tools.add(_decode_additional(item).tools, where + ".tools")
            elif kind == "item_reference":
                raise bad("item_reference items are not supported by this provider", where)
            elif kind == "reasoning":
                note("reasoning items")
            else:
                note(f"input items of type {kind!r}")
        except msgspec.ValidationError as exc:
            raise field_error(exc, where) from None
    conversation.finish()


# -- the whole request -------------------------------------------------------------------
def _response_format(text: _TextConfig | None) -> dict[str, Any] | None:
    fmt = text.format if text is not None else None
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise bad(f"text.format type {fmt.get('type')!r} is not supported", "text.format.type")


def _echo(request: _Request) -> dict[str, Any]:
    """The request's settings as a Response object repeats them."""
    reasoning = request.reasoning or {}
    return {
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": {"format": (request.text.format if request.text else None) or {"type": "text"}},
        "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [],
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation or "disabled",
        "user": request.user,
        "metadata": request.metadata or {},
    }


def translate(raw: bytes, *, cache: bool = False) -> tuple[dict[str, Any], Turn]:
    """`(canonical chat request, a Turn with the tool names and the echo)` for a
    Responses request; raises msgspec's error on a bad top-level field and
    `GatewayError(400)` on what the canonical shape cannot carry."""
    request = _decode_request(raw)
    if request.previous_response_id:
        # The gateway's own conversations were inlined into `input` already (resolve):
        # this one lives at OpenAI, which only an `openai` provider can continue.
        raise not_found(request.previous_response_id, previous=True)
    for name in _STORED_ELSEWHERE:
        if getattr(request, name) not in (None, False):
            raise bad(f"`{name}` is not supported by this provider", name)
    tools = Tools()
    tools.add(request.tools or [], "tools")
    conversation = _Conversation()
    _read_input(request, conversation, tools)
    canonical_tools = tools.canonical()
    conversation.name_calls(tools)
    if not conversation.messages:
        raise bad("`input` must hold at least one message", "input")
    if request.reasoning:
        note("reasoning options")
    if request.include:
        note(f"include {sorted(request.include)}")
    system = "\n\n".join(
        ([request.instructions] if request.instructions else []) + conversation.system
    )
    messages = conversation.messages
    if system:
        content: Any = system
        if cache and request.prompt_cache_key:
            breakpoint_ = {"type": "ephemeral"}
            content = [{"type": "text", "text": system, "cache_control": breakpoint_}]
        messages = [{"role": "system", "content": content}, *messages]
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.stream:
        body["stream"] = True
    if canonical_tools:
        body["tools"] = canonical_tools
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    choice = tool_choice(request.tool_choice, tools)
    if choice is not None and (canonical_tools or choice == "none"):
        body["tool_choice"] = choice
    if request.max_output_tokens is not None:
        body["max_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    response_format = _response_format(request.text)
    if response_format is not None:
        body["response_format"] = response_format
    user = request.user or request.safety_identifier
    if user:
        body["user"] = user
    turn = Turn(previous_id=request.previous_response_id, store=request.store is not False)
    turn.names = tools.names
    turn.echo = _echo(request)
    return body, turn


def canonical_request(
    ctx: RequestContext, original: bytes, *, cache: bool = False
) -> tuple[bytes, dict[str, Any]]:
    """The canonical body for `ctx`'s Responses request (core/wire.py), encoded and as
    objects (so the provider need not decode it again); the request's Turn learns the
    tool names and what to echo."""
    try:
        body, translated = translate(original, cache=cache)
    except msgspec.ValidationError as exc:
        raise invalid_request(exc) from None
    turn = turn_of(ctx)
    turn.names, turn.echo = translated.names, translated.echo
    return _encode(body), body
