"""pii_redaction in the real gateway over HTTP: what the fake provider receives, what the
client gets back (tokenized values restored, streamed or not), and refusals, for the
OpenAI inbound format, the Anthropic one translated for an OpenAI-format provider, and
the Anthropic one on the native pass-through to an Anthropic provider."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Recorded, Reply, run_gateway, sse

VALUES = {
    "email": "maria.gonzalez@example.com",
    "phone": "+1 415-555-0199",
    "credit_card": "4111 1111 1111 1111",
    "ssn": "536-22-1847",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ip_address": "203.0.113.77",
    "api_key": "sk-proj-" + "Ab3" * 15,
    "aws_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "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",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
    "private_key": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk\n-----END EC PRIVATE KEY-----",
}
SYSTEM = f"You help {VALUES['email']}. Their card is {VALUES['credit_card']}."
USER = " ".join(f"{kind}: {value}." for kind, value in VALUES.items())
PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")

# Route: (inbound path, model). "sonnet" goes to the Anthropic provider (native path
# for /v1/messages), "gpt-4o" to the OpenAI one (native path for /v1/responses).
ROUTES = {
    "openai": ("/v1/chat/completions", "gpt-4o"),
    "anthropic-translated": ("/v1/messages", "gpt-4o"),
    "anthropic-native": ("/v1/messages", "sonnet"),
    "responses-native": ("/v1/responses", "gpt-4o"),
    "responses-translated": ("/v1/responses", "sonnet"),
}


def toml(url: str, settings: str = "") -> str:
    return f"""
[[providers]]
name = "up"
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-test-upstream"
models = ["gpt-4o", "text-embedding-3-small"]

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{url}/v1"
api_key = "sk-ant-test-upstream"
models = ["sonnet"]

[plugins.pii_redaction]
{settings}
"""


def body(route: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    path, model = ROUTES[route]
    if path == "/v1/responses":
        return {
            "model": model,
            "stream": stream,
            "instructions": SYSTEM,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": USER}]}],
            **extra,
        }
    if path == "/v1/messages":
        return {
            "model": model,
            "max_tokens": 100,
            "stream": stream,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": [{"type": "text", "text": USER}]}],
            **extra,
        }
    return {
        "model": model,
        "stream": stream,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": [{"type": "text", "text": USER}]},
        ],
        **extra,
    }


def encoded(value: str) -> bytes:
    """How a value appears inside a JSON body."""
    return json.dumps(value)[1:-1].encode()


def echo_text(rec: Recorded) -> str:
    """The fake model repeats every placeholder it was given, in a sentence."""
    seen = list(dict.fromkeys(PLACEHOLDER.findall(rec.body.decode())))
    return "Noted: " + ", ".join(seen) + "."


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "sonnet",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def response(text: str, status: str = "completed") -> dict[str, Any]:
    """A Responses API answer (OpenAI's own shape, as the native path relays it)."""
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "gpt-4o",
        "output": [item] if status == "completed" else [],
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        if status == "completed"
        else None,
    }


def _anthropic_event(name: str, doc: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps(doc).encode() + b"\n\n"


def _responses_events(text: str) -> list[bytes]:
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    docs: list[dict[str, Any]] = [
        {"type": "response.created", "response": response("", "in_progress")},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []},
        },
        *({"type": "response.output_text.delta", **where, "delta": c} for c in text),
        {"type": "response.output_text.done", **where, "text": text},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": response(text)["output"][0],
        },
        {"type": "response.completed", "response": response(text)},
    ]
    return [_anthropic_event(d["type"], {**d, "sequence_number": i}) for i, d in enumerate(docs)]


async def _one_char_per_event(rec: Recorded) -> AsyncIterator[bytes]:
    """The echo streamed one character per event, events cut into odd network chunks."""
    text = echo_text(rec)
    if rec.path == "/v1/responses":
        events = _responses_events(text)
    elif rec.path == "/v1/messages":
        events = [
            _anthropic_event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **message(""),
                        "content": [],
                        "usage": {"input_tokens": 10, "output_tokens": 0},
                    },
                },
            ),
            _anthropic_event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            *[
                _anthropic_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": c},
                    },
                )
                for c in text
            ],
            _anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _anthropic_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 5},
                },
            ),
            _anthropic_event("message_stop", {"type": "message_stop"}),
        ]
    else:
        head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
        events = [
            sse({**head, "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]})
            for c in text
        ]
        events.append(
            sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        )
        events.append(
            sse(
                {
                    **head,
                    "choices": [],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
            )
        )
        events.append(b"data: [DONE]\n\n")
    data = b"".join(events)
    for i in range(0, len(data), 7):
        yield data[i : i + 7]


def answer(rec: Recorded) -> Reply:
    if json.loads(rec.body).get("stream"):
        return Reply.sse(_one_char_per_event(rec))
    text = echo_text(rec)
    if rec.path == "/v1/responses":
        return Reply.json(response(text))
    return Reply.json(message(text) if rec.path == "/v1/messages" else completion(text))


def streamed_text(raw: bytes, path: str) -> str:
    out = []
    for event in raw.split(b"\n\n"):
        data = event.split(b"data: ", 1)[-1]
        if not data.startswith(b"{"):
            continue
        doc = json.loads(data)
        if path == "/v1/responses":
            if doc.get("type") == "response.output_text.delta":
                out.append(doc["delta"])
            elif doc.get("type") == "response.completed":  # the whole answer again
                assert doc["response"]["output"][0]["content"][0]["text"] == "".join(out)
        elif path == "/v1/messages":
            if doc.get("type") == "content_block_delta":
                out.append(doc["delta"]["text"])
        else:
            for choice in doc.get("choices") or []:
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


def answer_text(resp: httpx.Response, path: str, stream: bool) -> str:
    if stream:
        return streamed_text(resp.content, path)
    doc = resp.json()
    if path == "/v1/responses":
        return str(doc["output"][0]["content"][0]["text"])
    if path == "/v1/messages":
        return "".join(b["text"] for b in doc["content"] if b["type"] == "text")
    return str(doc["choices"][0]["message"]["content"])


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "streamed"])
@pytest.mark.parametrize("route", list(ROUTES))
async def test_no_value_reaches_the_provider_and_tokens_come_back(
    upstream, tmp_path: Path, route: str, stream: bool
) -> None:
    fake, url = upstream
    for upstream_path in ("/v1/chat/completions", "/v1/messages", "/v1/responses"):
        fake.on(upstream_path, answer)
    path = ROUTES[route][0]
    async with run_gateway(toml(url), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(gw + path, json=body(route, stream=stream))
    assert resp.status_code == 200, resp.text
    (got,) = fake.requests
    assert got.path == {
        "anthropic-native": "/v1/messages",
        "responses-translated": "/v1/messages",
        "responses-native": "/v1/responses",
    }.get(route, "/v1/chat/completions")
    for kind, value in VALUES.items():
        assert encoded(value) not in got.body, kind
    # The defaults: emails and phones tokenized, cards and IBANs masked, the rest redacted.
    sent = got.body.decode()
    assert "[EMAIL_1]" in sent and "[PHONE_1]" in sent
    assert "**** **** **** 1111" in sent and "[SSN]" in sent and "[PRIVATE_KEY]" in sent
    # The model repeated the placeholders; the user reads their own values again.
    text = answer_text(resp, path, stream)
    assert text == f"Noted: {VALUES['email']}, {VALUES['phone']}."


async def test_a_blocked_type_is_refused_by_name_in_both_shapes(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    settings = 'actions = { api_key = "block", email = "block" }'
    async with run_gateway(toml(url, settings), tmp_path) as gw, httpx.AsyncClient() as client:
        openai = await client.post(gw + "/v1/chat/completions", json=body("openai"))
        claude = await client.post(gw + "/v1/messages", json=body("anthropic-native"))
    assert fake.requests == []
    assert openai.status_code == 400
    error = openai.json()["error"]
    assert (error["type"], error["code"]) == ("pii_blocked", "pii_blocked")
    assert "(email)" in error["message"]  # the first blocked type in the request
    assert claude.status_code == 400
    assert claude.json()["error"]["type"] == "invalid_request_error"
    assert "(email)" in claude.json()["error"]["message"]
    for resp in (openai, claude):
        for value in VALUES.values():
            assert encoded(value) not in resp.content


@pytest.mark.parametrize("tools", [False, True])
async def test_tool_arguments_and_results_only_when_asked(
    upstream, tmp_path: Path, tools: bool
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    email = VALUES["email"]
    request = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "send it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "send", "arguments": json.dumps({"to": email})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sent"},
        ],
    }
    claude = {
        "model": "sonnet",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "send it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "send", "input": {"to": email}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": f"sent to {email}"}
                ],
            },
        ],
    }
    fake.on("/v1/messages", answer)
    settings = f"tools = {str(tools).lower()}"
    async with run_gateway(toml(url, settings), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(gw + "/v1/chat/completions", json=request)
        assert resp.status_code == 200
        resp = await client.post(gw + "/v1/messages", json=claude)
        assert resp.status_code == 200
    openai, anthropic = (r.json()["messages"] for r in fake.requests)
    arguments = openai[1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"to": "[EMAIL_1]" if tools else email}
    assert anthropic[1]["content"][0]["input"] == {"to": "[EMAIL_1]" if tools else email}
    result = anthropic[2]["content"][0]["content"]
    assert result == ("sent to [EMAIL_1]" if tools else f"sent to {email}")


async def test_embeddings_input_is_redacted(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on(
        "/v1/embeddings",
        lambda r: Reply.json(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        ),
    )
    request = {"model": "text-embedding-3-small", "input": [f"mail {VALUES['email']}", "plain"]}
    async with run_gateway(toml(url), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(gw + "/v1/embeddings", json=request)
    assert resp.status_code == 200
    assert fake.requests[0].json()["input"] == ["mail [EMAIL]", "plain"]


async def test_a_request_without_pii_goes_upstream_byte_for_byte(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    raw = b'{"model":"gpt-4o",  "messages":[{"role":"user","content":"no personal data, version 1.2.3"}]}'
    async with run_gateway(toml(url), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(
            gw + "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert resp.status_code == 200
    assert fake.requests[0].body == raw


async def test_an_unknown_type_or_region_stops_start_up(tmp_path: Path) -> None:
    from interlock.core.app import create_app
    from interlock.core.config import ConfigError
    from tests.support import gateway_config

    for settings, key in [
        ('actions = { passport = "redact" }', "actions"),
        ('phone_region = "XX"', "phone_region"),
    ]:
        app = create_app(gateway_config(toml("http://127.0.0.1:9", settings), tmp_path))
        with pytest.raises(ConfigError, match=f"key `{key}`"):
            await app.state.gateway.open()
        await app.state.gateway.close()
