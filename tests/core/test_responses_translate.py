"""The Responses request in canonical terms, and its answer back: every rule the
translation's docstring states (core/inbound_responses.request.py), one test each, and
the errors a client gets for what cannot be carried."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from interlock.core.context import Usage
from interlock.core.errors import GatewayError
from interlock.core.inbound_responses.request import translate
from tests.providers.test_golden import collect, events_of, feed
from tests.providers.test_responses_golden import RESPONSES, responses_context


def canonical(request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    body, _ = translate(msgspec.json.encode({"model": "m", **request}), **kwargs)
    return body


def refused(request: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        canonical(request)
    assert caught.value.status == 400
    return caught.value


def fn(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": {"type": "object"}, **extra}


def names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body["tools"]]


def test_namespaces_are_flattened_and_renamed_only_when_names_clash() -> None:
    body = canonical(
        {
            "input": "hi",
            "tools": [
                fn("read_file"),
                {"type": "namespace", "name": "docs", "tools": [fn("read_file"), fn("search")]},
                {"type": "web_search"},
                {"type": "file_search", "vector_store_ids": ["vs_1"]},
            ],
        }
    )
    assert names(body) == ["read_file", "docs__read_file", "search"]


def test_custom_tools_become_functions_of_one_string_and_come_back_as_custom_calls() -> None:
    grammar = {"type": "grammar", "syntax": "regex", "definition": "^[a-z]+$"}
    request = {
        "model": "m",
        "input": [
            {"type": "custom_tool_call", "call_id": "c1", "name": "patch", "input": "abc"},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "ok"},
        ],
        "tools": [{"type": "custom", "name": "patch", "description": "Patch.", "format": grammar}],
    }
    body = canonical(request)
    (tool,) = body["tools"]
    assert tool["function"]["parameters"]["properties"]["input"]["type"] == "string"
    assert "^[a-z]+$" in tool["function"]["description"]
    call = body["messages"][0]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"input": "abc"}
    assert body["messages"][1] == {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    # ... and an answer calling it is a custom_tool_call holding that string.
    ctx = responses_context(request)
    answer = _completion(tool_calls=[("call_9", "patch", json.dumps({"input": "xyz"}))])
    (item,) = json.loads(RESPONSES.render(ctx, answer))["output"]
    assert (item["type"], item["name"], item["input"]) == ("custom_tool_call", "patch", "xyz")


def test_a_namespaced_call_comes_back_with_its_namespace() -> None:
    request = {
        "model": "m",
        "input": "hi",
        "tools": [fn("get"), {"type": "namespace", "name": "crm", "tools": [fn("get")]}],
    }
    ctx = responses_context(request)
    answer = _completion(tool_calls=[("call_1", "crm__get", "{}"), ("call_2", "get", "{}")])
    namespaced, plain = json.loads(RESPONSES.render(ctx, answer))["output"]
    assert (namespaced["name"], namespaced["namespace"]) == ("get", "crm")
    assert plain["name"] == "get" and "namespace" not in plain


def test_tools_declared_in_the_input_are_offered_too() -> None:
    item = {"type": "additional_tools", "role": "developer", "tools": [fn("late")]}
    body = canonical({"input": [item, {"role": "user", "content": "hi"}], "tools": [fn("early")]})
    assert names(body) == ["early", "late"]


def test_system_and_developer_messages_join_the_instructions_in_one_system_prompt() -> None:
    request = {
        "instructions": "Rules.",
        "input": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "input_text", "text": "Late note."}]},
        ],
        "prompt_cache_key": "k1",
    }
    body = canonical(request)
    assert body["messages"] == [
        {"role": "system", "content": "Rules.\n\nBe terse.\n\nLate note."},
        {"role": "user", "content": "hi"},
    ]
    cached = canonical(request, cache=True)["messages"][0]["content"]
    assert cached == [
        {
            "type": "text",
            "text": "Rules.\n\nBe terse.\n\nLate note.",
            "cache_control": {"type": "ephemeral"},
        }
    ]


def test_calls_join_the_assistant_turn_and_results_follow_them() -> None:
    body = canonical(
        {
            "input": [
                {"role": "user", "content": "go"},
                {"type": "message", "role": "assistant", "content": "Looking."},
                {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "b", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "a", "output": "1"},
                {"type": "function_call_output", "call_id": "b", "output": "2"},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            ]
        }
    )
    roles = [(m["role"], m.get("content"), len(m.get("tool_calls", []))) for m in body["messages"]]
    assert roles == [
        ("user", "go", 0),
        ("assistant", "Looking.", 2),
        ("tool", "1", 0),
        ("tool", "2", 0),
        ("assistant", None, 1),
    ]


def test_images_from_tool_outputs_follow_the_results_as_a_user_turn() -> None:
    image = {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"}
    body = canonical(
        {
            "input": [
                {"type": "function_call", "call_id": "a", "name": "shot", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "a",
                    "output": [{"type": "input_text", "text": "taken"}, image],
                },
            ]
        }
    )
    tool, user = body["messages"][1:]
    assert tool == {"role": "tool", "tool_call_id": "a", "content": "taken"}
    assert user["role"] == "user"
    assert user["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png", "detail": "high"},
    }


def test_settings_are_carried() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    body = canonical(
        {
            "input": "hi",
            "tools": [fn("f")],
            "tool_choice": {"type": "function", "name": "f"},
            "parallel_tool_calls": False,
            "max_output_tokens": 99,
            "temperature": 0.2,
            "top_p": 0.9,
            "text": {"format": {"type": "json_schema", "name": "X", "schema": schema}},
            "safety_identifier": "user-7",
            "stream": True,
        }
    )
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["parallel_tool_calls"] is False
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (99, 0.2, 0.9)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "X", "schema": schema},
    }
    assert body["user"] == "user-7" and body["stream"] is True
    assert canonical({"input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"
    ] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("required", "required"),
        ({"type": "allowed_tools", "mode": "required", "tools": []}, "required"),
        ({"type": "web_search_preview"}, "auto"),
    ],
)
def test_tool_choices(choice: Any, expected: Any) -> None:
    assert canonical({"input": "x", "tools": [fn("f")], "tool_choice": choice})["tool_choice"] == (
        expected
    )


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (
            {"input": [{"role": "user", "content": "x"}, {"type": "function_call"}]},
            "input[1].call_id",
        ),
        (
            {"input": [{"type": "function_call", "call_id": 7, "name": "f", "arguments": ""}]},
            "input[0].call_id",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_id": "file-1"}],
                    }
                ]
            },
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"instructions": "only"}, "input"),
    ],
)
def test_what_cannot_be_carried_is_refused_naming_the_field(
    request_: dict[str, Any], param: str
) -> None:
    err = refused(request_)
    assert err.param == param


def _completion(
    text: str | None = None,
    tool_calls: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    finish: str = "stop",
) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in tool_calls
        ]
        finish = "tool_calls"
    choice = {"index": 0, "message": message, "finish_reason": finish}
    return msgspec.json.encode({"id": "c", "object": "chat.completion", "choices": [choice]})


def test_an_answer_cut_at_max_output_tokens_is_incomplete() -> None:
    ctx = responses_context({"model": "m", "input": "x", "max_output_tokens": 5})
    ctx.usage = Usage(prompt_tokens=3, completion_tokens=5)
    doc = json.loads(RESPONSES.render(ctx, _completion("cut sho", finish="length")))
    assert doc["status"] == "incomplete"
    assert doc["incomplete_details"] == {"reason": "max_output_tokens"}
    assert doc["max_output_tokens"] == 5
    assert doc["completed_at"] is None


async def test_a_stream_cut_at_max_output_tokens_ends_incomplete() -> None:
    ctx = responses_context({"model": "m", "input": "x", "stream": True})
    chunk = {"choices": [{"index": 0, "delta": {"content": "cut"}, "finish_reason": "length"}]}
    data = b"data: " + msgspec.json.encode(chunk) + b"\n\ndata: [DONE]\n\n"
    events = events_of(await collect(RESPONSES.render_stream(ctx, feed(data))))
    name, doc = events[-1]
    assert name == "response.incomplete"
    assert doc["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert doc["response"]["output"][0]["content"][0]["text"] == "cut"


def test_texts_of_a_responses_body_for_redaction_and_routing() -> None:
    ctx = responses_context(
        {
            "model": "m",
            "instructions": "Be kind.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "call 555-0100"}]},
                {"type": "function_call", "call_id": "a", "name": "f", "arguments": '{"n":1}'},
                {"type": "function_call_output", "call_id": "a", "output": "done"},
            ],
        },
        translated=False,
    )
    assert ctx.texts() == ["Be kind.", "call 555-0100", '{"n":1}', "done"]
    assert ctx.map_texts(lambda t: t.replace("555-0100", "[phone]")) == 1
    sent = json.loads(ctx.body_bytes())
    assert sent["input"][0]["content"][0]["text"] == "call [phone]"
    assert sent["instructions"] == "Be kind."
