"""Gateway CPU per event of a translated `/v1/responses` stream: `python -m bench.responses`.

A Codex-shaped streamed turn (`store: false`, a developer message, history with function
calls, 12 tools in a namespace and a custom one) goes through the ASGI app in process to
an `anthropic` provider whose upstream client answers a canned Anthropic event stream at
once (one network chunk per event), so the figure is the gateway's own work: reading
Anthropic's events into canonical chunks, rendering those as Responses events with
sequence numbers, usage and the log line. Two answer lengths are measured and the
difference divided by the difference in events sent to the client gives the marginal
CPU per event; what is left is the per-request cost. The same is measured for the
native path (an `openai` provider relaying OpenAI's own events) and for
`/v1/chat/completions` to the same Anthropic stream, for scale. Medians of several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
import tomllib
from collections.abc import AsyncIterator
from typing import Any

from interlock.core.app import create_app
from interlock.core.config import parse_config

CONFIG = """
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-ant-bench"
models = ["claude-sonnet-4-6"]

[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-bench"
models = ["gpt-5"]

[store]
url = "sqlite://"
"""

PARAMS = {"type": "object", "properties": {"command": {"type": "string"}}}
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": f"tool_{i}",
        "description": "Run a tool. " * 8,
        "parameters": PARAMS,
    }
    for i in range(8)
]
TOOLS += [
    {"type": "custom", "name": "apply_patch", "description": "Edit files."},
    {"type": "web_search"},
    {
        "type": "namespace",
        "name": "mcp__github",
        "description": "GitHub tools.",
        "tools": [
            {"type": "function", "name": "search_issues", "parameters": PARAMS},
            {"type": "function", "name": "get_issue", "parameters": PARAMS},
        ],
    },
]
HISTORY: list[Any] = [
    {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "Rules. " * 400}],
    },
    {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Fix the test."}],
    },
    {
        "type": "function_call",
        "call_id": "c1",
        "name": "tool_0",
        "arguments": '{"command":"pytest"}',
    },
    {"type": "function_call_output", "call_id": "c1", "output": "1 failed\n" * 200},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Go on."}]},
]


def request(model: str) -> bytes:
    body = {
        "model": model,
        "input": HISTORY,
        "tools": TOOLS,
        "stream": True,
        "store": False,
        "reasoning": {"effort": "medium"},
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "bench",
    }
    return json.dumps(body).encode()


def chat_request() -> bytes:
    body = {
        "model": "claude-sonnet-4-6",
        "stream": True,
        "messages": [
            {"role": "system", "content": "Rules. " * 400},
            {"role": "user", "content": "Go on."},
        ],
    }
    return json.dumps(body).encode()


def _event(name: str, doc: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps({"type": name, **doc}).encode() + b"\n\n"


def anthropic_stream(deltas: int) -> list[bytes]:
    usage = {"input_tokens": 900, "cache_read_input_tokens": 12000, "output_tokens": 1}
    message = {
        "id": "msg_b",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "usage": usage,
    }
    events = [_event("message_start", {"message": message})]
    events.append(
        _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    )
    for i in range(deltas):
        delta = {"type": "text_delta", "text": f" word{i}"}
        events.append(_event("content_block_delta", {"index": 0, "delta": delta}))
    events.append(_event("content_block_stop", {"index": 0}))
    stop = {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": deltas}}
    events.append(_event("message_delta", stop))
    events.append(_event("message_stop", {}))
    return events


def openai_stream(deltas: int) -> list[bytes]:
    base = {
        "id": "resp_1",
        "object": "response",
        "status": "in_progress",
        "model": "gpt-5",
        "output": [],
    }
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    docs: list[tuple[str, dict[str, Any]]] = [("response.created", {"response": base})]
    docs.append(("response.in_progress", {"response": base}))
    docs += [("response.output_text.delta", {**where, "delta": f" word{i}"}) for i in range(deltas)]
    usage = {
        "input_tokens": 900,
        "output_tokens": deltas,
        "output_tokens_details": {"reasoning_tokens": 0},
    }
    docs.append(
        ("response.completed", {"response": {**base, "status": "completed", "usage": usage}})
    )
    return [_event(name, {**doc, "sequence_number": i}) for i, (name, doc) in enumerate(docs)]


class _Stream:
    status = 200
    headers = {"content-type": "text/event-stream"}

    def __init__(self, events: list[bytes]) -> None:
        self._events = events

    async def read(self) -> bytes:
        return b"".join(self._events)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for event in self._events:
            yield event

    async def aclose(self) -> None:
        return None


class _CannedStreams:
    def __init__(self, events: list[bytes]) -> None:
        self._events = events

    async def send(self, *args: Any, **kwargs: Any) -> _Stream:
        return _Stream(self._events)

    async def aclose(self) -> None:
        return None


async def measure(
    path: str, body: bytes, provider: str, events: list[bytes], n: int
) -> tuple[float, int]:
    """`(CPU µs per request, events sent to the client per request)`."""
    app = create_app(parse_config(tomllib.loads(CONFIG), source="bench"))
    gateway = app.state.gateway
    await gateway.start()
    gateway.log_setup.writer._stream = io.BytesIO()
    gateway.providers[provider].client = _CannedStreams(events)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.body":
            sent.append(msg.get("body", b""))

    for _ in range(min(n, 200)):  # warm-up
        await app(dict(scope), receive, send)
    client_events = b"".join(sent[-(len(events) + 50) :]).count(b"\n\n")
    sent.clear()
    await app(dict(scope), receive, send)
    client_events = b"".join(sent).count(b"\n\n")
    assert (
        b"response.completed" in b"".join(sent)
        or b"[DONE]" in b"".join(sent)
        or b"message_stop" in b"".join(sent)
    )
    start = time.process_time()
    for _ in range(n):
        sent.clear()
        await app(dict(scope), receive, send)
    us = (time.process_time() - start) / n * 1e6
    await gateway.close(hooks=True)
    gateway.log_setup.close()
    return us, client_events


def slope(case: str, n: int, short: int, long: int) -> tuple[float, float, int]:
    """`(µs per client event, µs per request without its events, events of the long one)`."""
    if case == "translated":
        args = ("/v1/responses", request("claude-sonnet-4-6"), "claude")
        make = anthropic_stream
    elif case == "native":
        args = ("/v1/responses", request("gpt-5"), "openai")
        make = openai_stream
    else:
        args = ("/v1/chat/completions", chat_request(), "claude")
        make = anthropic_stream
    a_us, a_events = asyncio.run(measure(*args, make(short), n))
    b_us, b_events = asyncio.run(measure(*args, make(long), n))
    per_event = (b_us - a_us) / (b_events - a_events)
    return per_event, a_us - per_event * a_events, b_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="requests per measurement")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--short", type=int, default=20, help="text deltas of the short answer")
    parser.add_argument("--long", type=int, default=400, help="text deltas of the long answer")
    args = parser.parse_args()
    print(
        f"In process, canned upstream streams of {args.short} and {args.long} text deltas, "
        f"{args.n} requests each, median of {args.runs} runs:"
    )
    for case, label in (
        ("translated", "/v1/responses -> anthropic (translated)"),
        ("native", "/v1/responses -> openai (native relay)"),
        ("chat", "/v1/chat/completions -> anthropic (translated)"),
    ):
        runs = [slope(case, args.n, args.short, args.long) for _ in range(args.runs)]
        per_event = statistics.median(r[0] for r in runs)
        fixed = statistics.median(r[1] for r in runs)
        print(
            f"  {label:48} {per_event:5.1f} µs CPU per client event, "
            f"{fixed:6.0f} µs per request besides ({runs[0][2]} events in the long answer)"
        )


if __name__ == "__main__":
    main()
