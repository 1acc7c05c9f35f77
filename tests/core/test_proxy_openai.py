"""The OpenAI-compatible proxy, end to end: client -> gateway (hypercorn) -> fake upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tests.support import GUARD, Recorded, Reply, local_plugin, run_gateway, sse

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "system_fingerprint": "fp_upstream",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 3},
    },
}


# What the recording plugin below sees: (hook, detail); cleared per test that uses it.
SEEN: list[tuple[str, Any]] = []
ENDED: list[asyncio.Event] = []
RECORDING = """
@hookimpl
def pre_forward(self, ctx):
    SEEN.append(("tags", dict(ctx.tags)))

@hookimpl
def post_response(self, ctx):
    SEEN.append(("post_response", (ctx.status, ctx.usage)))
    ENDED[0].set()
"""


def recording(tmp_path: Path) -> str:
    """A plugin recording ctx.tags and what post_response saw, into SEEN."""
    SEEN.clear()
    ENDED[:] = [asyncio.Event()]
    return local_plugin(
        tmp_path, "recording", RECORDING, "from tests.core.test_proxy_openai import SEEN, ENDED\n"
    )


def config(url: str, extra: str = "", client: str = "httpx", server: str = "") -> str:
    """A gateway with one OpenAI-format provider `up` at `url`; `extra` goes into its
    [[providers]] table, `server` into [server]."""
    return f"""
[server]
client = "{client}"
{server}

[[providers]]
name = "up"
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-test-upstream-key-0000"
models = ["gpt-4o", "gpt-4o-mini"]
{extra}
"""


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, object]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": None,
    }


USAGE_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o",
    "choices": [],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}


async def test_non_streamed_completion_passes_through(
    upstream, client, tmp_path: Path, client_kind: str
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "logit_bias": {"50256": -100},
        "x_vendor_field": {"nested": [1, 2]},
    }
    async with run_gateway(config(url, client=client_kind), tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json=body, headers={"authorization": "Bearer client-key"}
        )
    assert resp.status_code == 200
    assert resp.json() == COMPLETION  # the upstream's fields are kept, unknown ones too
    assert resp.headers["x-request-id"]
    sent = fake.requests[0]
    assert sent.json() == body  # fields the gateway does not read pass through untouched
    assert sent.headers["authorization"] == "Bearer sk-test-upstream-key-0000"  # key swapped


async def test_streamed_completion_relays_events_and_hides_usage_chunk(
    upstream, client, tmp_path: Path, client_kind: str
) -> None:
    fake, url = upstream

    async def events() -> AsyncIterator[bytes]:
        for piece in ("Hel", "lo", "!"):
            yield sse(chunk(piece))
        yield sse(chunk(None, "stop")) + sse(USAGE_CHUNK) + b"data: [DONE]\n\n"

    fake.on("/v1/chat/completions", lambda r: Reply.sse(events()))
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with run_gateway(config(url, client=client_kind), tmp_path) as gw:
        async with client.stream("POST", f"{gw}/v1/chat/completions", json=body) as resp:
            raw = b"".join([c async for c in resp.aiter_bytes()])
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["cache-control"] == "no-cache"
            assert resp.headers["x-accel-buffering"] == "no"
    # The gateway asked for usage, and removed the extra chunk the client did not ask for.
    assert fake.requests[0].json()["stream_options"] == {"include_usage": True}
    events_out = [e for e in raw.split(b"\n\n") if e]
    assert events_out[-1] == b"data: [DONE]"
    texts = [
        msgspec.json.decode(e[6:])["choices"][0]["delta"].get("content") for e in events_out[:-1]
    ]
    assert texts == ["Hel", "lo", "!", None]
    assert b'"prompt_tokens"' not in raw


async def test_stream_keeps_usage_chunk_when_client_asked(
    upstream, client, tmp_path: Path, client_kind: str
) -> None:
    fake, url = upstream

    async def events() -> AsyncIterator[bytes]:
        yield sse(chunk("hi")) + sse(chunk(None, "stop")) + sse(USAGE_CHUNK) + b"data: [DONE]\n\n"

    fake.on("/v1/chat/completions", lambda r: Reply.sse(events()))
    body = {
        "model": "gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with run_gateway(config(url, client=client_kind), tmp_path) as gw:
        resp = await client.post(f"{gw}/v1/chat/completions", json=body)
    assert fake.requests[0].body == msgspec.json.encode(body)  # nothing to add: bytes untouched
    assert b'"usage":{"prompt_tokens":5' in resp.content


async def test_first_chunk_reaches_client_before_upstream_finishes(
    upstream, client, tmp_path: Path, client_kind: str
) -> None:
    fake, url = upstream
    release = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        yield sse(chunk("first"))
        await release.wait()  # the upstream is still generating
        yield sse(chunk(None, "stop")) + b"data: [DONE]\n\n"

    fake.on("/v1/chat/completions", lambda r: Reply.sse(events()))
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with run_gateway(config(url, client=client_kind), tmp_path) as gw:
        async with client.stream("POST", f"{gw}/v1/chat/completions", json=body) as resp:
            it = resp.aiter_bytes()
            # The upstream cannot go on before `release`: a gateway that held events
            # back would hang here (and fail at the guard) instead of relaying this one.
            first = await asyncio.wait_for(anext(it), GUARD)
            assert first == sse(chunk("first"))  # relayed as it came, alone and whole
            release.set()
            rest = b"".join([c async for c in it])
    assert rest == sse(chunk(None, "stop")) + b"data: [DONE]\n\n"


async def test_client_disconnect_cancels_upstream_request(
    upstream, tmp_path: Path, client_kind: str
) -> None:
    fake, url = upstream
    never = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        yield sse(chunk("first")) + sse(chunk("second")) + sse(chunk("third"))
        await never.wait()
        yield b"data: [DONE]\n\n"

    fake.on("/v1/chat/completions", lambda r: Reply.sse(events()))
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    toml = config(url, client=client_kind) + recording(tmp_path)
    async with run_gateway(toml, tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", f"{gw}/v1/chat/completions", json=body) as resp:
                await asyncio.wait_for(anext(resp.aiter_bytes()), GUARD)
            # leaving the block closes the connection mid-stream
        await asyncio.wait_for(fake.stream_closed.wait(), GUARD)
        await asyncio.wait_for(ENDED[0].wait(), GUARD)
    # The upstream sent no usage before it was cut off: post_response gets an estimate.
    [(status, usage)] = [detail for hook, detail in SEEN if hook == "post_response"]
    assert status == 499
    assert usage.estimated
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


async def test_client_disconnect_cancels_non_streamed_upstream_request(
    upstream, tmp_path: Path, client_kind: str
) -> None:
    fake, url = upstream
    arrived = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(r: Recorded) -> Reply:
        arrived.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Reply.json(COMPLETION)

    fake.on("/v1/chat/completions", slow)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    toml = config(url, client=client_kind) + recording(tmp_path)
    async with run_gateway(toml, tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            request = asyncio.ensure_future(client.post(f"{gw}/v1/chat/completions", json=body))
            await asyncio.wait_for(arrived.wait(), GUARD)
            request.cancel()  # the client gives up and closes its connection
            await asyncio.wait_for(fake.stream_closed.wait(), GUARD)
            await asyncio.wait_for(ENDED[0].wait(), GUARD)
    assert cancelled.is_set()  # the provider stopped generating
    assert len(fake.requests) == 1
    assert [detail[0] for hook, detail in SEEN if hook == "post_response"] == [499]


async def test_metadata_object_is_accepted_and_becomes_tags(
    upstream, client, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"feature": "search", "user": "u-17", "priority": 2},
    }
    async with run_gateway(config(url) + recording(tmp_path), tmp_path) as gw:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json=body, headers={"x-interlock-tags": "team=infra"}
        )
        plain = await client.post(f"{gw}/v1/chat/completions", json={**body, "metadata": None})
    assert resp.status_code == plain.status_code == 200
    assert fake.requests[0].json() == body  # forwarded as sent
    tags = [detail for hook, detail in SEEN if hook == "tags"]
    assert tags == [{"feature": "search", "user": "u-17", "priority": "2", "team": "infra"}, {}]
