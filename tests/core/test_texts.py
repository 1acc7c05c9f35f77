"""`ctx.texts()` and `ctx.map_texts(fn)`: every message text read and replaced the same
way whatever the wire format, what redaction and complexity routing build on."""

from __future__ import annotations

from typing import Any

import msgspec

from interlock.core.context import ChatHead, RequestContext

_head = msgspec.json.Decoder(ChatHead).decode

OPENAI = {
    "model": "gpt-4o",
    "temperature": 0.25,
    "messages": [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is in"},
                {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}},
                {"type": "text", "text": "this picture?"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "cat"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    ],
}

ANTHROPIC = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [
        {"role": "user", "content": "hello"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": "cat", "n": 3}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": "a cat"},
                {
                    "type": "tool_result",
                    "tool_use_id": "tu_2",
                    "content": [{"type": "text", "text": "two cats"}],
                },
                {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
            ],
        },
    ],
}


def context(doc: dict[str, Any], wire: str = "openai") -> RequestContext:
    """A hand-built context holding `doc` as its body, in `wire` format (an Anthropic
    body is what a native pass-through to an Anthropic provider keeps)."""
    ctx = RequestContext(
        request_id="r", inbound="openai", endpoint="chat", path="/", headers={}, client=None
    )
    raw = msgspec.json.encode(doc)
    ctx.set_body(raw, _head(raw))
    ctx.wire = wire  # type: ignore[assignment]
    return ctx


def sent(ctx: RequestContext) -> Any:
    """The body as it would be forwarded."""
    return msgspec.json.decode(ctx.body_bytes())


def test_openai_texts_are_contents_parts_and_tool_arguments() -> None:
    assert context(OPENAI).texts() == [
        "be brief",
        "what is in",
        "this picture?",
        '{"q": "cat"}',
        "a cat",
    ]


def test_openai_map_texts_leaves_tool_calls_alone_unless_asked() -> None:
    ctx = context(OPENAI)
    assert ctx.map_texts(str.upper) == 4
    body = sent(ctx)
    assert body["temperature"] == 0.25  # fields without texts pass unchanged
    messages = body["messages"]
    assert messages[0]["content"] == "BE BRIEF"
    assert [p.get("text") for p in messages[1]["content"]] == ["WHAT IS IN", None, "THIS PICTURE?"]
    assert messages[1]["content"][1] == OPENAI["messages"][1]["content"][1]  # type: ignore[index]
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == '{"q": "cat"}'
    assert messages[3]["content"] == "A CAT"

    with_tools = context(OPENAI)
    assert with_tools.map_texts(str.upper, tools=True) == 5
    assert sent(with_tools)["messages"][2]["tool_calls"][0]["function"]["arguments"] == (
        '{"Q": "CAT"}'
    )


def test_anthropic_texts_include_the_system_prompt_tool_uses_and_results() -> None:
    as_string = context({**ANTHROPIC, "system": "you are terse"}, "anthropic")
    assert as_string.texts() == [
        "you are terse",
        "hello",
        "let me look",
        "cat",
        "a cat",
        "two cats",
    ]
    blocks = [{"type": "text", "text": "you are"}, {"type": "text", "text": "terse"}]
    as_blocks = context({**ANTHROPIC, "system": blocks}, "anthropic")
    assert as_blocks.texts()[:2] == ["you are", "terse"]


def test_the_system_field_is_only_read_in_anthropic_bodies() -> None:
    assert context({**OPENAI, "system": "not a prompt here"}).texts()[0] == "be brief"


def test_anthropic_map_texts_with_and_without_tools() -> None:
    ctx = context({**ANTHROPIC, "system": [{"type": "text", "text": "sys"}]}, "anthropic")
    assert ctx.map_texts(str.upper) == 3
    body = sent(ctx)
    assert body["system"] == [{"type": "text", "text": "SYS"}]
    assert body["messages"][0]["content"] == "HELLO"
    assert body["messages"][1]["content"][0]["text"] == "LET ME LOOK"
    assert body["messages"][1]["content"][1]["input"] == {"q": "cat", "n": 3}
    assert body["messages"][2]["content"][0]["content"] == "a cat"
    assert body["max_tokens"] == 64

    with_tools = context({**ANTHROPIC, "system": "sys"}, "anthropic")
    assert with_tools.map_texts(str.upper, tools=True) == 6
    body = sent(with_tools)
    assert body["system"] == "SYS"
    assert body["messages"][1]["content"][1]["input"] == {"q": "CAT", "n": 3}
    results = body["messages"][2]["content"]
    assert results[0]["content"] == "A CAT"
    assert results[1]["content"] == [{"type": "text", "text": "TWO CATS"}]
    assert results[2] == ANTHROPIC["messages"][2]["content"][2]  # type: ignore[index]


def test_map_texts_that_changes_nothing_forwards_the_original_bytes() -> None:
    """A redaction plugin that found nothing must not make the body be re-encoded."""
    for doc, wire in ((OPENAI, "openai"), ({**ANTHROPIC, "system": "s"}, "anthropic")):
        ctx = context(doc, wire)
        assert ctx.map_texts(lambda text: text, tools=True) == 0
        assert ctx.body_bytes() is ctx.raw


def test_map_texts_sees_earlier_edits() -> None:
    ctx = context(OPENAI)
    ctx.set_field("messages", [{"role": "user", "content": "replaced"}])
    assert ctx.texts() == ["replaced"]
    ctx.map_texts(lambda text: text + "!")
    assert sent(ctx)["messages"] == [{"role": "user", "content": "replaced!"}]
