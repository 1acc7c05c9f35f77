"""Gateway CPU for a Claude Code-shaped request: `python -m bench.claude_code`.

What Claude Code sends on every turn (a ~20 kB system prompt with a `cache_control`
breakpoint, 30 tools, a few turns of history, `thinking`) through `/v1/messages` to an
`anthropic` provider whose upstream answers a canned message at once, so the figure is the
gateway's own work per request: decoding, validation, the body sent upstream (native
pass-through since issue 15; translation to the canonical shape and back before it),
usage and the log line. Prints the median of several runs of CPU µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
import tomllib
from typing import Any

from bench.inprocess import _CannedClient
from interlock.core.app import create_app
from interlock.core.config import parse_config

CONFIG = """
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-ant-bench"
models = ["claude-sonnet-4-6"]
"""

TOOLS = [
    {
        "name": f"tool_{i}",
        "description": "Run a shell command in the workspace and return its output. " * 3,
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "the command"},
                "timeout": {"type": "integer", "description": "seconds"},
            },
            "required": ["command"],
        },
    }
    for i in range(30)
]
REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 32000,
    "system": [
        {
            "type": "text",
            "text": ("You are Claude Code, an interactive CLI tool. " * 440)[:20_000],
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "tools": TOOLS,
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Fix the failing test."}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "tool_0", "input": {"command": "pytest -x"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "1 failed"},
                {"type": "text", "text": "go on", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ],
    "metadata": {"user_id": "user_bench"},
}
ANSWER = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "Done."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "cache_read_input_tokens": 6000,
        "cache_creation_input_tokens": 100,
        "output_tokens": 5,
    },
}


async def per_request_us(n: int) -> float:
    body = json.dumps(REQUEST).encode()
    app = create_app(parse_config(tomllib.loads(CONFIG), source="bench"))
    gateway = app.state.gateway
    if hasattr(gateway, "start"):
        await gateway.start()
    gateway.log_setup.writer._stream = io.BytesIO()
    gateway.providers["claude"].client = _CannedClient(json.dumps(ANSWER).encode())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"anthropic-version", b"2023-06-01"),
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(min(n, 500)):
        await app(dict(scope), receive, send)
    assert set(statuses) == {200}, statuses[:3]
    start = time.process_time()
    for _ in range(n):
        await app(dict(scope), receive, send)
    us = (time.process_time() - start) / n * 1e6
    if hasattr(gateway, "close"):
        await gateway.close(hooks=True)
    gateway.log_setup.close()
    return us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [asyncio.run(per_request_us(args.n)) for _ in range(args.runs)]
    print(
        f"Claude Code-shaped request ({len(json.dumps(REQUEST)) // 1000} kB, 30 tools) through "
        f"/v1/messages to an anthropic provider: median {statistics.median(runs):.1f} µs CPU "
        f"per request over {args.runs} runs ({', '.join(f'{r:.0f}' for r in runs)})"
    )


if __name__ == "__main__":
    main()
