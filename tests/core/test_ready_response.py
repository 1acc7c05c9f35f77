"""A `ReadyResponse` from `pre_forward` (a cache hit) is the answer: its status, headers
and body, rendered in the caller's format, replayed as a stream (tool calls included)
when the client asked for one; nothing is forwarded, the pre_forward plugins after the
one that answered do not run, and `transform_response` does not see it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.core.test_hooks import CALLS, HI, plugin_file
from tests.core.test_proxy_openai import config
from tests.support import run_gateway, sse_events


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


READY = {
    "id": "chatcmpl-cached",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "cached!",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Bern"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
CACHE = """
@hookimpl
def pre_forward(self, ctx):
    import msgspec
    from tests.core.test_ready_response import READY
    ctx.response = ReadyResponse(msgspec.json.encode(READY), 203, {"X-Cache": "hit"})
"""
LATE = """
@hookimpl
def pre_forward(self, ctx):
    CALLS.append("late.pre_forward")

@hookimpl
def transform_response(self, ctx, body):
    CALLS.append("late.transform_response")

@hookimpl
def post_response(self, ctx):
    CALLS.append(f"late.post_response:{ctx.status}")
"""


@pytest.mark.parametrize("inbound", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_ready_response_keeps_status_headers_and_tool_calls(
    upstream, tmp_path: Path, inbound: str, stream: bool
) -> None:
    """A cache hit with a custom status and header, answered whole or replayed as a
    stream with its tool call, in the caller's format; the pre_forward plugins after
    the one that answered do not run, and transform_response is not called for it."""
    fake, url = upstream
    toml = config(url) + plugin_file(tmp_path, "cache", CACHE) + plugin_file(tmp_path, "late", LATE)
    path = "/v1/chat/completions" if inbound == "openai" else "/v1/messages"
    body = {"model": "gpt-4o", "messages": HI, "stream": stream, "max_tokens": 16}
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(gw + path, json=body)
    assert resp.status_code == 203
    assert resp.headers["x-cache"] == "hit"
    assert fake.requests == []
    assert CALLS == ["late.post_response:203"]
    if not stream:
        doc = resp.json()
        if inbound == "openai":
            assert doc == READY
        else:
            assert doc["content"] == [
                {"type": "text", "text": "cached!"},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Bern"},
                },
            ]
            assert doc["stop_reason"] == "tool_use"
        return
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.content)
    if inbound == "openai":
        assert events[-1] == (None, b"[DONE]")
        deltas = [e["choices"][0] for _, e in events[:-1]]
        assert "".join(d["delta"].get("content") or "" for d in deltas) == "cached!"
        calls = [c for d in deltas for c in d["delta"].get("tool_calls") or []]
        assert calls == [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Bern"}'},
            }
        ]
        assert deltas[-1]["finish_reason"] == "tool_calls"
    else:
        starts = [e["content_block"] for name, e in events if name == "content_block_start"]
        assert starts == [
            {"type": "text", "text": ""},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
        ]
        partial = [
            e["delta"]["partial_json"]
            for name, e in events
            if name == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
        ]
        assert "".join(partial) == '{"city":"Bern"}'
        [delta] = [e for name, e in events if name == "message_delta"]
        assert delta["delta"]["stop_reason"] == "tool_use"
        assert events[-1][0] == "message_stop"
