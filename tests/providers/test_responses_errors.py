"""`/v1/responses` errors in OpenAI's shape: bad requests before anything is sent, and a
provider failing after the first event of a translated stream (`error` and
`response.failed`, never a clean `response.completed`)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.providers.test_golden import events_of
from tests.providers.upstreams import ANTHROPIC, COMPATIBLE
from tests.support import FakeUpstream, Reply, run_gateway

MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'


@pytest.mark.parametrize(
    ("content", "headers", "status", "param"),
    [
        (b"{not json", {}, 400, None),
        (b'{"input": "hi"}', {}, 400, "model"),
        (b'{"model": 7, "input": "hi"}', {}, 400, "model"),
        (b'{"model": "m", "input": 42}', {}, 400, "input"),
        (b'{"model": "m", "stream": "yes", "input": "hi"}', {}, 400, "stream"),
        (b'{"model": "m", "input": "hi", "temperature": "hot"}', {}, 400, "temperature"),
        (b'{"model": "m", "input": [{"role": "user"}]}', {}, 400, "input[0].content"),
        (b'{"model": "m", "input": "hi"}', {"content-type": "text/plain"}, 415, None),
    ],
)
async def test_bad_requests_are_openai_errors(
    tmp_path: Path, content: bytes, headers: dict[str, str], status: int, param: str | None
) -> None:
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(f"{gw}/v1/responses", content=content, headers=headers)
        wrong_method = await client.get(f"{gw}/v1/responses")
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


async def _dies_mid_stream() -> AsyncIterator[bytes]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-6",
        "usage": {"input_tokens": 9, "output_tokens": 1},
    }
    start = {"type": "message_start", "message": message}
    yield b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n"
    yield (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
    )
    yield (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hel"}}\n\n'
    )
    yield (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )


async def test_a_translated_stream_that_dies_ends_with_response_failed(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/messages", lambda rec: Reply.sse(_dies_mid_stream()))
    async with run_gateway(ANTHROPIC.config(url), tmp_path) as gw:
        api = openai.AsyncOpenAI(base_url=gw + "/v1", api_key="k", max_retries=0)
        stream = await api.responses.create(model="claude-sonnet-4-6", input="hi", stream=True)
        events = [event async for event in stream]
        usage, _, _, status = sys.modules["interlock_local_plugin_recorder"].INSTANCE.records[-1]
    types = [e.type for e in events]
    assert types[-2:] == ["error", "response.failed"]
    assert "response.completed" not in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed"
    assert failed.error is not None and "overloaded" in failed.error.message
    (partial,) = failed.output
    assert partial.status == "incomplete"
    assert partial.content[0].text == "Hel"  # type: ignore[union-attr]
    assert status == 503 and usage.prompt_tokens == 9 and usage.estimated


async def test_an_openai_format_error_event_mid_stream_fails_the_response(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream

    async def events() -> AsyncIterator[bytes]:
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        yield b'data: {"error": {"message": "upstream exploded", "type": "server_error"}}\n\n'

    fake.on("/openai/v1/chat/completions", lambda rec: Reply.sse(events()))
    async with run_gateway(COMPATIBLE.config(url), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(
            f"{gw}/v1/responses", json={"model": "llama3", "input": "hi", "stream": True}
        )
    names = [name for name, _ in events_of(resp.content)]
    assert names[-2:] == ["error", "response.failed"]
    assert "upstream exploded" in resp.text
    assert resp.content.count(b"event: error") == 1  # the core added no second error
