"""Every request that reaches the gateway under `/v1/` ends in exactly one `post_response`
and exactly one log line, whatever its fate, and `pre_auth` runs before the body is read.

Each fate is one real request (httpx, or a raw socket where a client library would hide
what matters: a partial body, an early answer, a client that leaves mid-upload) carrying
its own `x-request-id`; a recording plugin and the gateway's own JSON log output are then
counted per request id.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from interlock.core.context import Usage
from tests.core.test_proxy_openai import COMPLETION, USAGE_CHUNK, chunk, config
from tests.support import (
    GUARD,
    Recorded,
    Reply,
    local_plugin,
    raw_connect,
    read_response,
    request_lines,
    run_gateway,
    sse,
)

# What the plugin below records, cleared per test: (hook, request id, detail).
SEEN: list[tuple[str, str, Any]] = []
# Set by post_response, per request id: what a test waits on when the client is gone.
FINISHED: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

MAX_BODY = 2048
READY = msgspec.json.encode(
    {
        "id": "chatcmpl-ready",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "cached"},
                "finish_reason": "stop",
            }
        ],
    }
)

WATCHER = """
@hookimpl
def pre_auth(self, ctx):
    SEEN.append(("pre_auth", ctx.request_id, len(ctx.raw)))
    if "x-refuse" in ctx.headers:
        raise GatewayError(int(ctx.headers["x-refuse"]), "authentication_error", "refused")

@hookimpl
def pre_forward(self, ctx):
    if "x-ready" in ctx.headers:
        ctx.response = ReadyResponse(READY)
    if "x-limit" in ctx.headers:
        raise GatewayError(429, "rate_limit_error", "slow down", headers={"retry-after": "7"})
    if "x-crash" in ctx.headers:
        raise RuntimeError("a plugin bug")

@hookimpl
def register_routes(self):
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request):
        if "x-crash" in request.headers:
            raise RuntimeError("a plugin route bug")
        if "x-forbid" in request.headers:
            raise GatewayError(403, "permission_error", "not for you")
        return PlainTextResponse("hello")

    return [Route("/v1/plugin/hello", hello, methods=["GET"])]

@hookimpl
async def post_response(self, ctx):
    await asyncio.sleep(0)
    SEEN.append(("post_response", ctx.request_id, (ctx.status, ctx.usage)))
    FINISHED[ctx.request_id].set()
"""
PRELUDE = "from tests.core.test_lifecycle import SEEN, FINISHED, READY\n"


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()
    FINISHED.clear()


def _answer(rec: Recorded) -> Reply:
    """Text, a stream, a 500 ("fail"), or a stream that never ends ("hang")."""
    if b"fail" in rec.body:
        return Reply.json({"error": {"message": "boom", "type": "server_error"}}, 500)
    if not rec.json().get("stream"):
        return Reply.json(COMPLETION)

    async def events() -> AsyncIterator[bytes]:
        yield sse(chunk("Hel"))
        if b"hang" in rec.body:
            await asyncio.Event().wait()
        yield sse(chunk("lo")) + sse(chunk(None, "stop")) + sse(USAGE_CHUNK) + b"data: [DONE]\n\n"

    return Reply.sse(events())


# -- the requests -------------------------------------------------------------------------
# (gateway url, request id) -> (status, body) the client saw, None when it left early
Seen = tuple[int, bytes] | None
Act = Callable[[str, str], Awaitable[Seen]]


def _chat_body(inbound: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    if inbound == "anthropic":
        body["max_tokens"] = 16
    return {**body, **extra}


PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


def post(inbound: str, *, headers: dict[str, str] | None = None, **kw: Any) -> Act:
    async def act(gw: str, rid: str) -> Seen:
        async with httpx.AsyncClient(timeout=GUARD) as client:
            resp = await client.post(
                gw + PATHS[inbound],
                headers={"x-request-id": rid, **(headers or {})},
                **(kw or {"json": _chat_body(inbound)}),
            )
        return resp.status_code, resp.content

    return act


def call(method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> Act:
    async def act(gw: str, rid: str) -> Seen:
        sent = {"x-request-id": rid, **(headers or {})}
        async with httpx.AsyncClient(timeout=GUARD) as client:
            resp = await client.request(method, gw + path, headers=sent, **kw)
        return resp.status_code, resp.content

    return act


def streamed(
    inbound: str, *, leave_early: bool = False, headers: dict[str, str] | None = None, **extra: Any
) -> Act:
    """A streamed chat; with `leave_early` the client reads one chunk and hangs up."""

    async def act(gw: str, rid: str) -> Seen:
        text = "hang" if leave_early else "hi"
        body = _chat_body(inbound, text, stream=True, **extra)
        sent = {"x-request-id": rid, **(headers or {})}
        async with httpx.AsyncClient(timeout=GUARD) as client:
            async with client.stream("POST", gw + PATHS[inbound], json=body, headers=sent) as r:
                if leave_early:
                    await asyncio.wait_for(anext(r.aiter_bytes()), GUARD)
                    return None  # leaving the block closes the connection mid-stream
                return r.status_code, await r.aread()

    return act


def raw(path: str, head: str, body: bytes = b"", *, hang_up: bool = False) -> Act:
    """Headers and part of a body on a raw socket; read the answer, or hang up."""

    async def act(gw: str, rid: str) -> Seen:
        reader, writer = await raw_connect(gw)
        writer.write(
            f"POST {path} HTTP/1.1\r\nhost: gw\r\nx-request-id: {rid}\r\n"
            f"content-type: application/json\r\n{head}\r\n".encode()
            + body
        )
        await writer.drain()
        try:
            if hang_up:
                return None
            resp = await read_response(reader)
            return resp.status, resp.body
        finally:
            writer.close()

    return act


def _chunked(size: int) -> bytes:
    return b"%x\r\n" % size + b"x" * size + b"\r\n"


@dataclass
class Fate:
    act: Act
    status: int  # what post_response and the log line see (499: the client left)


FATES = {
    "200-chat-openai": Fate(post("openai"), 200),
    "200-chat-anthropic": Fate(post("anthropic"), 200),
    "200-stream-openai": Fate(streamed("openai"), 200),
    "200-stream-anthropic": Fate(streamed("anthropic"), 200),
    "400-malformed-json-openai": Fate(post("openai", content=b"{not json"), 400),
    "400-malformed-json-anthropic": Fate(post("anthropic", content=b"{not json"), 400),
    "413-content-length-openai": Fate(
        raw(PATHS["openai"], f"content-length: {MAX_BODY + 1}\r\n"), 413
    ),
    "413-content-length-anthropic": Fate(
        raw(PATHS["anthropic"], f"content-length: {MAX_BODY + 1}\r\n"), 413
    ),
    "413-chunked": Fate(
        raw(PATHS["openai"], "transfer-encoding: chunked\r\n", _chunked(MAX_BODY + 1)), 413
    ),
    "401-pre-auth-openai": Fate(post("openai", headers={"x-refuse": "401"}), 401),
    "401-pre-auth-anthropic": Fate(post("anthropic", headers={"x-refuse": "401"}), 401),
    "403-pre-auth": Fate(post("openai", headers={"x-refuse": "403"}), 403),
    "429-pre-forward-anthropic": Fate(post("anthropic", headers={"x-limit": "1"}), 429),
    "500-pre-forward-crash": Fate(post("openai", headers={"x-crash": "1"}), 500),
    "200-plugin-route": Fate(call("GET", "/v1/plugin/hello"), 200),
    "403-plugin-route": Fate(call("GET", "/v1/plugin/hello", headers={"x-forbid": "1"}), 403),
    "500-plugin-route-crash": Fate(call("GET", "/v1/plugin/hello", headers={"x-crash": "1"}), 500),
    "404-route-openai": Fate(call("POST", "/v1/nothing-here", json={}), 404),
    "404-route-anthropic": Fate(call("POST", "/v1/messages/nothing-here", json={}), 404),
    "405-get-chat": Fate(call("GET", "/v1/chat/completions"), 405),
    "404-unknown-model-openai": Fate(
        post("openai", json={**_chat_body("openai"), "model": "x"}), 404
    ),
    "404-unknown-model-anthropic": Fate(
        post("anthropic", json={**_chat_body("anthropic"), "model": "x"}), 404
    ),
    "200-models": Fate(call("GET", "/v1/models"), 200),
    "200-count-tokens": Fate(
        call("POST", "/v1/messages/count_tokens", json=_chat_body("anthropic")), 200
    ),
    "499-gone-during-upload": Fate(
        raw(PATHS["openai"], "content-length: 1000\r\n", b'{"model": "gpt-4o", ', hang_up=True),
        499,
    ),
    "499-gone-mid-stream-openai": Fate(streamed("openai", leave_early=True), 499),
    "499-gone-mid-stream-anthropic": Fate(streamed("anthropic", leave_early=True), 499),
    "502-upstream-failed-openai": Fate(post("openai", json=_chat_body("openai", "fail")), 502),
    "502-upstream-failed-anthropic": Fate(
        post("anthropic", json=_chat_body("anthropic", "fail")), 502
    ),
    "502-upstream-failed-stream": Fate(
        streamed("openai", messages=[{"role": "user", "content": "fail"}]), 502
    ),
    "200-ready-response-openai": Fate(post("openai", headers={"x-ready": "1"}), 200),
    "200-ready-response-anthropic": Fate(post("anthropic", headers={"x-ready": "1"}), 200),
    "200-ready-response-stream": Fate(streamed("openai", headers={"x-ready": "1"}), 200),
}


@pytest.mark.parametrize("fate", list(FATES))
async def test_each_fate_ends_in_one_post_response_and_one_log_line(
    upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str], fate: str
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", _answer)
    expected = FATES[fate]
    rid = f"fate-{fate}"
    toml = config(url, server=f"max_body_bytes = {MAX_BODY}") + local_plugin(
        tmp_path, "watcher", WATCHER, PRELUDE
    )
    async with run_gateway(toml, tmp_path) as gw:
        seen_by_client = await asyncio.wait_for(expected.act(gw, rid), GUARD)
        # The client may have left before the gateway finished: wait for the end itself.
        await asyncio.wait_for(FINISHED[rid].wait(), GUARD)
    if expected.status != 499:
        assert seen_by_client is not None
        status, body = seen_by_client
        assert status == expected.status
        if status >= 400:  # refused or failed: in the caller's own error shape
            doc = msgspec.json.decode(body)
            if "anthropic" in fate:
                assert doc["type"] == "error" and doc["error"]["message"]
            else:
                assert "type" not in doc and doc["error"]["type"] and doc["error"]["message"]
    finished = [detail for hook, r, detail in SEEN if hook == "post_response" and r == rid]
    assert [status for status, _ in finished] == [expected.status]
    lines = [line for line in request_lines(capsys.readouterr().out) if line["request_id"] == rid]
    assert [line["status"] for line in lines] == [expected.status]
    # pre_auth ran once, on headers alone (before any body was read).
    assert [d for hook, r, d in SEEN if hook == "pre_auth" and r == rid] == [0]


ANONYMOUS = """
@hookimpl
def pre_auth(self, ctx):
    SEEN.append(("pre_auth", ctx.request_id, len(ctx.raw)))
    if "authorization" not in ctx.headers:
        raise GatewayError(401, "authentication_error", "who are you?")

@hookimpl
def post_response(self, ctx):
    SEEN.append(("post_response", ctx.request_id, (ctx.status, ctx.usage)))
"""


@pytest.mark.parametrize("inbound", ["openai", "anthropic"])
async def test_an_anonymous_4mb_body_is_refused_before_it_is_read(
    upstream, tmp_path: Path, inbound: str
) -> None:
    """Only the first 4 KB of a 4 MB body are sent: the 401 must come back anyway, so the
    gateway cannot have waited for (let alone parsed) the rest."""
    fake, url = upstream
    toml = config(url) + local_plugin(tmp_path, "auth", ANONYMOUS, PRELUDE)
    async with run_gateway(toml, tmp_path) as gw:
        reader, writer = await raw_connect(gw)
        try:
            writer.write(
                f"POST {PATHS[inbound]} HTTP/1.1\r\nhost: gw\r\nx-request-id: anon\r\n"
                "content-type: application/json\r\ncontent-length: 4000000\r\n\r\n".encode()
                + b'{"model": "gpt-4o", "messages": ['
                + b" " * 4096
            )
            await writer.drain()
            resp = await read_response(reader)
        finally:
            writer.close()
    assert resp.status == 401
    error = msgspec.json.decode(resp.body)
    if inbound == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "authentication_error"
    else:
        assert error["error"]["type"] == "authentication_error"
    assert [("pre_auth", "anon", 0), ("post_response", "anon", (401, Usage()))] == SEEN
    assert fake.requests == []
