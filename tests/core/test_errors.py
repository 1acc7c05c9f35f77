"""Every refusal is valid JSON in the OpenAI error shape, keeps its meaning, and the
server keeps serving afterwards."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.core.test_proxy_openai import COMPLETION, chunk, config
from tests.support import Recorded, Reply, run_gateway, sse

HI = [{"role": "user", "content": "hi"}]


def assert_openai_error(resp: httpx.Response, status: int, type_: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == type_
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def _still_serving(client: httpx.AsyncClient, gw: str) -> None:
    resp = await client.get(f"{gw}/healthz")
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"model": "gpt-4o", "messages": [', None),  # malformed JSON
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-4o"}', "messages"),
        (b'{"model": 42, "messages": []}', "model"),
        (b'{"model": "gpt-4o", "messages": "hello"}', "messages"),
        (b'{"model": "gpt-4o", "messages": []}', "messages"),
        (b"[1, 2]", None),
        (b"", None),
    ],
)
async def test_bad_requests_are_400_naming_the_field(
    upstream, client, tmp_path: Path, payload: bytes, field: str | None
) -> None:
    fake, url = upstream
    async with run_gateway(config(url), tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions",
            content=payload,
            headers={"content-type": "application/json"},
        )
        err = assert_openai_error(resp, 400, "invalid_request_error")
        if field is not None:
            assert f"`{field}`" in err["message"]
        await _still_serving(client, gw)
    assert fake.requests == []


async def test_unknown_model_is_404_model_not_found(upstream, client, tmp_path: Path) -> None:
    _, url = upstream
    async with run_gateway(config(url), tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "nope-1", "messages": HI}
        )
        err = assert_openai_error(resp, 404, "model_not_found")
        assert err["code"] == "model_not_found"


async def test_body_over_limit_is_413_with_content_length(upstream, client, tmp_path: Path) -> None:
    fake, url = upstream
    toml = config(url, server="max_body_bytes = 2048")
    async with run_gateway(toml, tmp_path) as gw:
        big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]}
        resp = await client.post(f"{gw}/v1/chat/completions", json=big)
        assert_openai_error(resp, 413, "request_too_large")
        await _still_serving(client, gw)
    assert fake.requests == []


async def test_chunked_body_over_limit_is_413_without_reading_it_all(
    upstream, tmp_path: Path
) -> None:
    """No Content-Length: the gateway counts bytes as they arrive and stops at the limit.

    The client sends the first part, waits for the 413, and only then would send the
    rest: the answer arriving first proves the gateway did not wait for the whole body.
    """
    fake, url = upstream
    toml = config(url, server="max_body_bytes = 2048")
    async with run_gateway(toml, tmp_path) as gw:
        host, port = gw.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        part = b'{"model":"gpt-4o","messages":[{"role":"user","content":"' + b"y" * 3000
        writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 413")
        writer.close()
        async with httpx.AsyncClient() as client:
            await _still_serving(client, gw)
    assert fake.requests == []


UPSTREAM_ERRORS = [
    # (upstream status, body, headers) -> (status the caller sees, type, what else must hold)
    pytest.param(
        429,
        {"error": {"message": "Rate limit reached", "type": "requests"}},
        {"retry-after": "7"},
        429,
        "rate_limit_error",
        "retry-after: 7",
        id="429-keeps-retry-after",
    ),
    pytest.param(500, "<html>boom</html>", {}, 502, "upstream_error", None, id="5xx-is-502"),
    pytest.param(
        503, {"error": {"message": "busy"}}, {}, 503, "overloaded_error", None, id="503-overloaded"
    ),
    pytest.param(
        529,
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {},
        503,
        "overloaded_error",
        None,
        id="529-overloaded",
    ),
    pytest.param(
        401,
        {
            "error": {
                "message": "Incorrect API key provided: sk-test-up****0000",
                "type": "invalid_request_error",
            }
        },
        {},
        502,
        "upstream_auth_error",
        "no key text",
        id="401-hides-upstream-text",
    ),
    pytest.param(
        400,
        {
            "error": {
                "message": "Invalid value for 'temperature'",
                "type": "invalid_request_error",
                "param": "temperature",
            }
        },
        {},
        400,
        "invalid_request_error",
        "temperature",
        id="400-keeps-message",
    ),
]


@pytest.mark.parametrize(
    ("upstream_status", "body", "headers", "status", "type_", "check"), UPSTREAM_ERRORS
)
async def test_upstream_errors_keep_their_meaning(
    upstream,
    client,
    tmp_path: Path,
    client_kind: str,
    upstream_status: int,
    body: object,
    headers: dict[str, str],
    status: int,
    type_: str,
    check: str | None,
) -> None:
    fake, url = upstream
    if isinstance(body, str):
        reply = Reply(upstream_status, body.encode(), {"content-type": "text/html", **headers})
    else:
        reply = Reply.json(body, upstream_status, headers)
    fake.on("/v1/chat/completions", lambda r: reply)
    async with run_gateway(config(url, client=client_kind), tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI}
        )
        err = assert_openai_error(resp, status, type_)
        if check == "retry-after: 7":
            assert resp.headers["retry-after"] == "7"
        elif check == "no key text":
            assert "sk-" not in resp.text and "0000" not in err["message"]
        elif check is not None:
            assert check in err["message"]
        await _still_serving(client, gw)


async def test_upstream_timeout_is_504(upstream, client, tmp_path: Path, client_kind: str) -> None:
    fake, url = upstream
    hang = asyncio.Event()

    async def slow(r: Recorded) -> Reply:
        await hang.wait()
        return Reply.json(COMPLETION)

    fake.on("/v1/chat/completions", slow)
    toml = config(url, client=client_kind).replace(
        'models = ["gpt-4o", "gpt-4o-mini"]', 'models = ["gpt-4o"]\nread_timeout = 0.2'
    )
    async with run_gateway(toml, tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI}
        )
        assert_openai_error(resp, 504, "upstream_timeout")
        hang.set()


async def test_unreachable_upstream_is_502(client, tmp_path: Path, client_kind: str) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with run_gateway(config(f"http://127.0.0.1:{port}", client=client_kind), tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI}
        )
        assert_openai_error(resp, 502, "upstream_unreachable")


async def test_stream_dying_midway_ends_with_an_error_event(
    upstream, client, tmp_path: Path, client_kind: str
) -> None:
    fake, url = upstream

    async def events() -> AsyncIterator[bytes]:
        yield sse(chunk("partial"))
        raise RuntimeError("upstream crashed")  # the fake drops the connection mid-body

    fake.on("/v1/chat/completions", lambda r: Reply.sse(events()))
    body = {"model": "gpt-4o", "stream": True, "messages": HI}
    async with run_gateway(config(url, client=client_kind), tmp_path) as gw:
        resp = await client.post(f"{gw}/v1/chat/completions", json=body)
        assert resp.status_code == 200
        events_out = [e for e in resp.content.split(b"\n\n") if e]
        assert b'"partial"' in events_out[0]
        assert events_out[-1].startswith(b'data: {"error":')
        assert b"[DONE]" not in resp.content
        await _still_serving(client, gw)


async def test_unknown_route_and_wrong_method_are_json(upstream, client, tmp_path: Path) -> None:
    _, url = upstream
    async with run_gateway(config(url), tmp_path) as gw:
        assert_openai_error(await client.get(f"{gw}/v2/nothing"), 404, "not_found_error")
        assert_openai_error(
            await client.get(f"{gw}/v1/chat/completions"), 405, "method_not_allowed"
        )
