"""What Codex CLI sends, through `/v1/responses` to Claude.

A Codex-shaped turn (instructions, a developer message, a long history of function
calls, custom `apply_patch` calls, namespaced MCP calls, reasoning items and a web
search, 10 tool entries including two `namespace` groups, `web_search` and a custom
tool, `store: false`, `stream: true`, `reasoning`, `include`, `prompt_cache_key`,
`client_metadata`, Codex's headers) goes to an Anthropic-format fake that records what it
received. It must get a valid Messages request that lost nothing it can use; the client
must get the Responses events for Claude's answer, however the network split them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock.core.inbound_responses import tools as responses_tools
from tests.providers.test_golden import events_of, tiny_chunks
from tests.providers.upstreams import UPSTREAM_KEY
from tests.support import Recorded, Reply, run_gateway

SHELL_PARAMS = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}},
        "workdir": {"type": "string"},
        "timeout_ms": {"type": "number"},
    },
    "required": ["command"],
    "additionalProperties": False,
}
PATH_PARAMS = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
QUERY_PARAMS = {"type": "object", "properties": {"query": {"type": "string"}}}
GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\n'


def function(name: str, parameters: Any = QUERY_PARAMS) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": f"The {name} tool.",
        "strict": False,
        "parameters": parameters,
    }


TOOLS: list[Any] = [
    function("shell", SHELL_PARAMS),
    function("update_plan"),
    {
        "type": "custom",
        "name": "apply_patch",
        "description": "Use the `apply_patch` tool to edit files.",
        "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR},
    },
    function("view_image", PATH_PARAMS),
    {"type": "web_search", "external_web_access": False},
    {
        "type": "namespace",
        "name": "mcp__github",
        "description": "Tools of the github MCP server.",
        "tools": [function("search_issues"), function("get_issue")],
    },
    {
        "type": "namespace",
        "name": "mcp__docs",
        "description": "Tools of the docs MCP server.",
        "tools": [function("search"), function("read_file", PATH_PARAMS)],
    },
    function("read_file", PATH_PARAMS),
    function("list_dir", PATH_PARAMS),
    function("grep_files"),
]
FLATTENED = {
    "shell",
    "update_plan",
    "apply_patch",
    "view_image",
    "search_issues",
    "get_issue",
    "search",
    "mcp__docs__read_file",  # two tools are called read_file: the namespaced one is renamed
    "read_file",
    "list_dir",
    "grep_files",
}
INSTRUCTIONS = "You are Codex, a coding agent running in the Codex CLI. " * 40
DEVELOPER = "<permissions instructions>Approval policy: on-request.</permissions instructions>"
ENCRYPTED = "gAAAAABo-encrypted-reasoning-only-openai-can-read=="
LOG = "FAILED tests/test_parser.py::test_utf8 - AssertionError\n" * 400  # a long tool output
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
PATCH = "*** Begin Patch\n*** Update File: parser.py\n@@\n-    return data\n+    return data.decode()\n*** End Patch\n"


def message(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def call(call_id: str, name: str, arguments: Any, namespace: str | None = None) -> Any:
    item = {"type": "function_call", "call_id": call_id, "name": name}
    item["arguments"] = json.dumps(arguments)
    if namespace:
        item["namespace"] = namespace
    return item


def output(call_id: str, result: Any) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": result}


def reasoning(n: int) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": f"Thinking step {n}"}]
    return {
        "type": "reasoning",
        "id": f"rs_{n}",
        "summary": summary,
        "encrypted_content": ENCRYPTED,
    }


HISTORY: list[Any] = [
    message("developer", DEVELOPER),
    message("user", "<environment_context><cwd>/repo</cwd></environment_context>"),
    message("user", "Fix the failing test in tests/test_parser.py"),
    reasoning(1),
    call("call_1", "shell", {"command": ["bash", "-lc", "pytest -x"]}),
    output("call_1", LOG),
    reasoning(2),
    {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": PATCH},
    {
        "type": "custom_tool_call_output",
        "call_id": "call_2",
        "output": "Success. Updated parser.py",
    },
    call("call_3", "search_issues", {"query": "utf8"}, namespace="mcp__github"),
    output("call_3", "#12 UTF-8 decoding"),
    call("call_4", "read_file", {"path": "README.md"}),
    call("call_5", "read_file", {"path": "guide.md"}, namespace="mcp__docs"),
    output("call_4", "# Parser"),
    output("call_5", "Decode bytes as UTF-8."),
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "python bytes decode"},
    },
    message("assistant", "I patched the parser; let me look at the screenshot."),
    call("call_6", "view_image", {"path": "shot.png"}),
    output(
        "call_6",
        [{"type": "input_text", "text": "shot.png"}, {"type": "input_image", "image_url": PNG}],
    ),
    message("user", "Great. Now search the issues and patch the docs."),
]
REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "instructions": INSTRUCTIONS,
    "input": HISTORY,
    "tools": TOOLS,
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "019a5b7e-5c4e-7a31-9a6f-3c1f4f1e2d10",
    "text": {"verbosity": "medium"},
    "client_metadata": {"x-codex-installation-id": "inst-1"},
}
HEADERS = {
    "authorization": "Bearer codex-virtual-key",
    "openai-beta": "responses=experimental",
    "originator": "codex_cli_rs",
    "session_id": "019a5b7e-5c4e-7a31-9a6f-3c1f4f1e2d10",
    "x-codex-turn-metadata": '{"turn_id":"t-7","sandbox":"workspace-write"}',
    "user-agent": "codex_cli_rs/0.169.0",
}


# -- Claude's answer: text, then a custom tool call, then a namespaced function call ------------
def _sse(name: str, doc: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps({"type": name, **doc}).encode() + b"\n\n"


def claude_stream() -> bytes:
    usage = {"input_tokens": 900, "cache_read_input_tokens": 12000, "output_tokens": 1}
    message_doc = {
        "id": "msg_codex",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [],
        "stop_reason": None,
        "usage": usage,
    }
    events = [_sse("message_start", {"message": message_doc})]

    def block(index: int, content: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        events.append(_sse("content_block_start", {"index": index, "content_block": content}))
        for delta in deltas:
            events.append(_sse("content_block_delta", {"index": index, "delta": delta}))
        events.append(_sse("content_block_stop", {"index": index}))

    block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Patching the docs…"}])
    patch_args = json.dumps({"input": PATCH})
    pieces = [patch_args[i : i + 9] for i in range(0, len(patch_args), 9)]
    tool = {"type": "tool_use", "id": "toolu_patch", "name": "apply_patch", "input": {}}
    block(1, tool, [{"type": "input_json_delta", "partial_json": p} for p in pieces])
    tool = {"type": "tool_use", "id": "toolu_issues", "name": "search_issues", "input": {}}
    block(2, tool, [{"type": "input_json_delta", "partial_json": '{"query": "docs"}'}])
    stop = {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 77}}
    events.append(_sse("message_delta", stop))
    events.append(_sse("message_stop", {}))
    return b"".join(events)


def _config(url: str) -> str:
    return f"""
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{url}/v1"
api_key = "{UPSTREAM_KEY}"
models = ["claude-sonnet-4-6"]
"""


async def _codex_turn(upstream: Any, tmp_path: Path, split: bool) -> tuple[Recorded, bytes, Any]:
    fake, url = upstream

    async def chunks() -> AsyncIterator[bytes]:
        data = claude_stream()
        for piece in tiny_chunks(data) if split else [data]:
            yield piece

    fake.on("/v1/messages", lambda rec: Reply.sse(chunks()))
    async with run_gateway(_config(url), tmp_path) as gw:
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.post(f"{gw}/v1/responses", json=REQUEST, headers=HEADERS)
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"].startswith("text/event-stream")
            final = events_of(resp.content)[-1][1]["response"]
            stored = await client.get(f"{gw}/v1/responses/{final['id']}", headers=HEADERS)
    return fake.requests[-1], resp.content, stored


@pytest.fixture(autouse=True)
def _fresh_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(responses_tools, "_noted", set())


async def test_codex_turn_reaches_claude_as_a_complete_messages_request(
    upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got, _, stored = await _codex_turn(upstream, tmp_path, split=False)
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    sent = got.json()
    # Codex's headers and key stay at the gateway; the provider gets its own key.
    assert got.headers["x-api-key"] == UPSTREAM_KEY
    for name in ("x-codex-turn-metadata", "session_id", "originator", "openai-beta"):
        assert name not in got.headers
    assert "codex-virtual-key" not in json.dumps(got.headers)
    # One system prompt: the instructions, then the developer message, cached (the
    # prompt_cache_key) as Claude Code caches its own.
    (system,) = sent["system"]
    assert system["text"] == INSTRUCTIONS + "\n\n" + DEVELOPER
    assert system["cache_control"] == {"type": "ephemeral"}
    # Every function and custom tool, flattened; the built-in web_search is not sent.
    assert {t["name"] for t in sent["tools"]} == FLATTENED
    patch_tool = next(t for t in sent["tools"] if t["name"] == "apply_patch")
    assert patch_tool["input_schema"]["required"] == ["input"]
    assert GRAMMAR.strip() in patch_tool["description"]
    assert sent["stream"] is True
    # Nothing Claude cannot read: no reasoning, no encrypted content, no web search call,
    # no OpenAI-only options.
    body = got.body.decode()
    for absent in (ENCRYPTED, "Thinking step", "ws_1", "client_metadata", "verbosity"):
        assert absent not in body
    # The history as Messages turns, alternating, each tool_use answered by its result.
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant"] * 5 + ["user"]
    uses = {
        b["id"]: b
        for m in sent["messages"]
        for b in m["content"]
        if isinstance(b, dict) and b["type"] == "tool_use"
    }
    results = {
        b["tool_use_id"]: b["content"]
        for m in sent["messages"]
        for b in m["content"]
        if isinstance(b, dict) and b["type"] == "tool_result"
    }
    assert sorted(uses) == sorted(results) == [f"call_{i}" for i in range(1, 7)]
    assert results["call_1"] == LOG  # the long tool output, whole
    assert uses["call_2"]["name"] == "apply_patch"
    assert uses["call_2"]["input"] == {"input": PATCH}
    assert uses["call_3"]["name"] == "search_issues"
    assert uses["call_5"]["name"] == "mcp__docs__read_file"
    assert uses["call_4"]["name"] == "read_file"
    last_user = sent["messages"][-1]["content"]
    assert [b["type"] for b in last_user] == ["tool_result", "text", "image", "text"]
    assert last_user[2]["source"]["type"] == "base64"  # view_image's picture, after its result
    assert last_user[-1]["text"] == "Great. Now search the issues and patch the docs."
    # store: false is honoured: the gateway kept nothing.
    assert stored.status_code == 404
    # What was dropped is noted in the log, once each.
    dropped = [e["dropped"] for e in logs if e.get("event") == "responses_not_carried"]
    assert len(dropped) == len(set(dropped))
    assert {
        "built-in tool 'web_search'",
        "reasoning items",
        "input items of type 'web_search_call'",
        "reasoning options",
    } <= set(dropped)


async def test_codex_gets_the_responses_events_for_claudes_answer(upstream, tmp_path: Path) -> None:
    _, content, _ = await _codex_turn(upstream, tmp_path, split=False)
    events = events_of(content)
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert [doc["sequence_number"] for _, doc in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    assert final["store"] is False
    text, patch, issues = final["output"]
    assert text["content"][0]["text"] == "Patching the docs…"
    assert patch == {
        "type": "custom_tool_call",
        "id": patch["id"],
        "status": "completed",
        "call_id": "toolu_patch",
        "name": "apply_patch",
        "input": PATCH,
    }
    assert issues["type"] == "function_call"
    assert (issues["name"], issues["namespace"]) == ("search_issues", "mcp__github")
    assert json.loads(issues["arguments"]) == {"query": "docs"}
    custom_done = next(doc for name, doc in events if name.endswith("custom_tool_call_input.done"))
    assert custom_done["input"] == PATCH
    assert final["usage"]["input_tokens"] == 12900
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 12000
    assert final["usage"]["output_tokens"] == 77


async def test_claudes_events_split_one_to_three_bytes_give_the_same_stream(
    upstream, tmp_path: Path
) -> None:
    """Every event and every multi-byte character (…) split across network chunks."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, whole, _ = await _codex_turn(upstream, tmp_path / "a", split=False)
    _, split, _ = await _codex_turn(upstream, tmp_path / "b", split=True)

    def normalized(content: bytes) -> list[Any]:
        text = content.decode()
        for doc in (d for _, d in events_of(content) if "response" in d):
            text = text.replace(doc["response"]["id"][7:], "ID")  # items' ids derive from it
        return [(n, d) for n, d in events_of(text.encode()) if not _timestamps(d)]

    assert normalized(split) == normalized(whole)


def _timestamps(doc: dict[str, Any]) -> bool:
    response = doc.get("response")
    if isinstance(response, dict):
        response.pop("created_at", None)
        response.pop("completed_at", None)
    return False
