"""Restoring tokenized values: complete answers, and streams cut at every possible place,
in OpenAI chunks and in Anthropic's native events, text and tool arguments alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from interlock.plugins.pii_redaction.actions import Vault
from interlock.plugins.pii_redaction.restore import StreamRestorer, restore_body

EMAIL = "alice@example.com"
PHONE = "+1 415-555-0199"
ODD = 'a "quoted"\nvalue\\'  # what JSON must escape, inside tool arguments


def vault() -> Vault:
    v = Vault()
    assert v.placeholder("email", EMAIL) == "[EMAIL_1]"
    assert v.placeholder("phone", PHONE) == "[PHONE_1]"
    assert v.placeholder("private_key", ODD) == "[PRIVATE_KEY_1]"
    return v


ANSWER = "Write to [EMAIL_1] or call [PHONE_1]; [EMAIL_9] and [x] stay. [EMAIL_1]"
RESTORED = f"Write to {EMAIL} or call {PHONE}; [EMAIL_9] and [x] stay. {EMAIL}"


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    doc = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def event(name: str, doc: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps(doc).encode() + b"\n\n"


async def run(restorer: StreamRestorer, items: list[bytes]) -> list[bytes]:
    async def source() -> AsyncIterator[bytes]:
        for item in items:
            yield item

    return [item async for item in restorer.wrap(source())]


def openai_text(items: list[bytes]) -> tuple[str, str]:
    """(content, tool arguments) assembled as a client does."""
    content, args = [], []
    for event_bytes in b"".join(items).split(b"\n\n"):
        if not event_bytes.startswith(b"data: {"):
            continue
        for choice in json.loads(event_bytes[6:])["choices"]:
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                args.append(call["function"].get("arguments") or "")
    return "".join(content), "".join(args)


def cuts(text: str) -> list[list[str]]:
    """`text` in two pieces at every position, and one character at a time."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


@pytest.mark.parametrize("pieces", cuts(ANSWER))
async def test_openai_stream_split_anywhere(pieces: list[str]) -> None:
    items = [chunk({"role": "assistant", "content": ""})]
    items += [chunk({"content": p}) for p in pieces]
    items += [chunk({}, "stop"), b"data: [DONE]\n\n"]
    out = await run(StreamRestorer(vault(), "openai"), items)
    assert openai_text(out)[0] == RESTORED
    assert out[-1] == b"data: [DONE]\n\n"


@pytest.mark.parametrize("end", ["finish", "done", "nothing"])
async def test_a_held_tail_is_flushed_however_the_stream_ends(end: str) -> None:
    items = [chunk({"content": "mail [EMAIL_1"}), chunk({"content": "] now [EMA"})]
    items += {"finish": [chunk({}, "stop")], "done": [b"data: [DONE]\n\n"], "nothing": []}[end]
    out = await run(StreamRestorer(vault(), "openai"), items)
    assert openai_text(out)[0] == f"mail {EMAIL} now [EMA"


async def test_several_events_in_one_item_and_untouched_events() -> None:
    plain = chunk({"content": "no placeholder here"})
    items = [plain, chunk({"content": "a [EMAIL_"}) + chunk({"content": "1] b"}), chunk({}, "stop")]
    out = await run(StreamRestorer(vault(), "openai"), items)
    assert out[0] is plain  # passed through as the same bytes
    assert openai_text(out)[0] == f"no placeholder herea {EMAIL} b"


@pytest.mark.parametrize("at", range(1, 30))
async def test_tool_arguments_are_restored_as_json(at: int) -> None:
    arguments = '{"to": "[EMAIL_1]", "note": "[PRIVATE_KEY_1]"}'
    pieces = [arguments[:at], arguments[at:]]
    items = [
        chunk(
            {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "send", "arguments": p}}]}
        )
        for p in pieces
    ]
    out = await run(StreamRestorer(vault(), "openai"), [*items, chunk({}, "tool_calls")])
    assert json.loads(openai_text(out)[1]) == {"to": EMAIL, "note": ODD}


def anthropic_stream(pieces: list[str]) -> list[bytes]:
    out = [
        event("message_start", {"type": "message_start", "message": {"id": "m", "content": []}}),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    out += [
        event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
        )
        for p in pieces
    ]
    out += [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
        event("message_stop", {"type": "message_stop"}),
    ]
    return out


def anthropic_text(items: list[bytes]) -> tuple[str, list[str]]:
    text, names = [], []
    for raw in b"".join(items).split(b"\n\n"):
        if not raw:
            continue
        name, data = raw.split(b"\n", 1)
        names.append(name.decode().removeprefix("event: "))
        doc = json.loads(data.removeprefix(b"data: "))
        if doc["type"] == "content_block_delta":
            text.append(doc["delta"].get("text", ""))
    return "".join(text), names


@pytest.mark.parametrize("pieces", cuts(ANSWER))
async def test_anthropic_native_stream_split_anywhere(pieces: list[str]) -> None:
    out = await run(StreamRestorer(vault(), "anthropic"), anthropic_stream(pieces))
    text, names = anthropic_text(out)
    assert text == RESTORED
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.index("content_block_stop") > max(
        i for i, n in enumerate(names) if n == "content_block_delta"
    )


async def test_anthropic_tool_input_json_is_restored() -> None:
    partial = ['{"to": "[EMA', 'IL_1]", "n', 'ote": "[PRIVATE_KEY_1]"}']
    items = [
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": p},
            },
        )
        for p in partial
    ] + [event("content_block_stop", {"type": "content_block_stop", "index": 1})]
    out = await run(StreamRestorer(vault(), "anthropic"), items)
    joined = "".join(
        json.loads(raw.split(b"\ndata: ", 1)[1])["delta"]["partial_json"]
        for raw in b"".join(out).split(b"\n\n")
        if raw.startswith(b"event: content_block_delta")
    )
    assert json.loads(joined) == {"to": EMAIL, "note": ODD}


def test_complete_answers_in_both_formats() -> None:
    openai = {
        "choices": [
            {
                "message": {
                    "content": ANSWER,
                    "tool_calls": [{"function": {"arguments": '{"to": "[PRIVATE_KEY_1]"}'}}],
                }
            }
        ]
    }
    out = json.loads(restore_body(json.dumps(openai).encode(), vault()) or b"")
    message = out["choices"][0]["message"]
    assert message["content"] == RESTORED
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"to": ODD}
    anthropic = {
        "content": [
            {"type": "text", "text": ANSWER},
            {"type": "tool_use", "input": {"to": "[EMAIL_1]"}},
        ]
    }
    out = json.loads(restore_body(json.dumps(anthropic).encode(), vault()) or b"")
    assert out["content"][0]["text"] == RESTORED
    assert out["content"][1]["input"] == {"to": EMAIL}


def test_a_body_without_placeholders_is_left_alone() -> None:
    assert restore_body(b'{"content": "[not one] of ours [EMAIL_9]"}', vault()) is None


def responses_stream(pieces: list[str], arguments: list[str]) -> list[bytes]:
    """OpenAI Responses events: a message item from `pieces`, then a function call
    whose arguments arrive as `arguments`; sequence numbers as OpenAI sends them."""
    text, args = "".join(pieces), "".join(arguments)
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    call = {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "send"}
    final = {
        "output": [
            {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": text}]},
            {**call, "arguments": args},
        ]
    }
    docs: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"output": []}},
        *({"type": "response.output_text.delta", **where, "delta": p} for p in pieces),
        {"type": "response.output_text.done", **where, "text": text},
        {"type": "response.output_item.done", "output_index": 0, "item": final["output"][0]},
        *(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_1",
                "output_index": 1,
                "delta": a,
            }
            for a in arguments
        ),
        {
            "type": "response.function_call_arguments.done",
            "item_id": "fc_1",
            "output_index": 1,
            "arguments": args,
        },
        {"type": "response.completed", "response": final},
    ]
    return [event(d["type"], {**d, "sequence_number": i}) for i, d in enumerate(docs)]


@pytest.mark.parametrize("pieces", cuts(ANSWER))
async def test_responses_native_stream_split_anywhere(pieces: list[str]) -> None:
    arguments = '{"to": "[EMAIL_1]", "note": "[PRIVATE_KEY_1]"}'
    out = await run(
        StreamRestorer(vault(), "responses"),
        responses_stream(pieces, [arguments[:9], arguments[9:21], arguments[21:]]),
    )
    docs = [json.loads(raw.split(b"\ndata: ", 1)[1]) for raw in b"".join(out).split(b"\n\n") if raw]
    deltas = "".join(d["delta"] for d in docs if d["type"] == "response.output_text.delta")
    args = "".join(
        d["delta"] for d in docs if d["type"] == "response.function_call_arguments.delta"
    )
    assert deltas == RESTORED
    assert json.loads(args) == {"to": EMAIL, "note": ODD}
    (done,) = [d for d in docs if d["type"] == "response.output_text.done"]
    assert done["text"] == RESTORED
    (final,) = [d for d in docs if d["type"] == "response.completed"]
    assert final["response"]["output"][0]["content"][0]["text"] == RESTORED
    assert json.loads(final["response"]["output"][1]["arguments"]) == {"to": EMAIL, "note": ODD}
    # every delta of the message comes before its `done`
    kinds = [d["type"] for d in docs]
    assert kinds.index("response.output_text.done") > max(
        i for i, k in enumerate(kinds) if k == "response.output_text.delta"
    )
