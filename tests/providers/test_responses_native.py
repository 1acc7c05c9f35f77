"""Same format in, same format out: `/v1/responses` served by an `openai` or `azure`
provider keeps the client's bytes and the provider's own answer and events.

A Codex-shaped request reaches the fake byte for byte (the key and model_map aside) with
its `OpenAI-Beta` header; usage with cached and reasoning tokens is read for cost; an
upstream failure mid-stream is relayed as the provider said it, a cut-off stream ends
with an `error` event; failover crosses formats both ways; `GET`/`DELETE` of OpenAI's
ids and `previous_response_id` go to the provider.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.providers.recorder_plugin import Recorder
from tests.providers.responses_upstreams import (
    AZURE_RESPONSES,
    OPENAI,
    native_events,
    native_response,
)
from tests.providers.test_golden import events_of
from tests.providers.test_responses_codex import HEADERS
from tests.providers.test_responses_codex import REQUEST as CODEX
from tests.providers.upstreams import ANTHROPIC, RECORDER, TEXT, UPSTREAM_KEY
from tests.support import FakeUpstream, Recorded, Reply, run_gateway

CODEX_FOR_GPT = {**CODEX, "model": "gpt-4o"}


def recorder() -> Recorder:
    import sys

    return sys.modules["interlock_local_plugin_recorder"].INSTANCE  # type: ignore[no-any-return]


def _answer(rec: Recorded) -> Reply:
    model = rec.json()["model"]
    if rec.json().get("stream"):
        return Reply.sse(_chunks(b"".join(native_events(model, False))))
    return Reply.json(native_response(model, False))


async def _chunks(data: bytes, size: int = 97) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _post(gw: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=False).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(
            f"{gw}/v1/responses",
            content=raw,
            headers={"content-type": "application/json", **(headers or HEADERS)},
        )


@pytest.mark.parametrize("stream", [False, True])
async def test_codex_request_reaches_openai_byte_for_byte(
    upstream: tuple[FakeUpstream, str], tmp_path: Path, stream: bool
) -> None:
    fake, url = upstream
    fake.on("/v1/responses", _answer)
    body = {**CODEX_FOR_GPT, "stream": stream}
    async with run_gateway(OPENAI.config(url), tmp_path) as gw:
        resp = await _post(gw, body)
        usage, cost, _, status = recorder().records[-1]
    assert status == 200
    assert resp.status_code == 200, resp.text
    (got,) = fake.requests
    assert got.body == json.dumps(body, ensure_ascii=False).encode()  # every byte
    assert got.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert got.headers["openai-beta"] == "responses=experimental"
    for name in ("x-codex-turn-metadata", "session_id", "originator"):
        assert name not in got.headers
    if stream:
        assert resp.content == b"".join(native_events("gpt-4o", False))  # OpenAI's own events
    else:
        assert resp.json() == native_response("gpt-4o", False)
    assert usage == OPENAI.usage  # input 30 (10 cached), output 9 (4 reasoning)
    # gpt-4o: input 2.50, cached 1.25, output 10.0 per million tokens
    assert cost == pytest.approx((20 * 2.50 + 10 * 1.25 + 9 * 10.0) / 1e6)


async def test_azure_gets_the_deployment_as_model_at_its_v1_responses_url(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/openai/v1/responses", _answer)
    async with run_gateway(AZURE_RESPONSES.config(url), tmp_path) as gw:
        resp = await _post(gw, CODEX_FOR_GPT)
    assert resp.status_code == 200, resp.text
    (got,) = fake.requests
    assert got.query == ""  # the v1 API needs no api-version
    assert got.headers["api-key"] == UPSTREAM_KEY
    assert got.json() == {**CODEX_FOR_GPT, "model": "gpt4o-prod"}
    sent = json.dumps(CODEX_FOR_GPT, ensure_ascii=False).encode()
    assert got.body.replace(b'"gpt4o-prod"', b'"gpt-4o"') == sent  # only the model changed


async def test_a_failure_upstream_is_relayed_as_openai_said_it(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    events = native_events("gpt-4o", False)[:4]
    failed = native_response("gpt-4o", False, status="failed")
    failed["error"] = {"code": "server_error", "message": "The model failed."}
    doc = {"type": "response.failed", "response": failed, "sequence_number": 4}
    events.append(b"event: response.failed\ndata: " + msgspec.json.encode(doc) + b"\n\n")
    fake.on("/v1/responses", lambda rec: Reply.sse(_chunks(b"".join(events), 5)))
    async with run_gateway(OPENAI.config(url), tmp_path) as gw:
        resp = await _post(gw, {**CODEX_FOR_GPT, "stream": True})
        _, _, _, status = recorder().records[-1]
    assert resp.content == b"".join(events)  # nothing added after OpenAI's own end
    assert status == 502  # the request is recorded as failed


async def test_a_stream_cut_off_upstream_ends_with_an_error_event(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    events = native_events("gpt-4o", False)[:6]
    fake.on("/v1/responses", lambda rec: Reply.sse(_chunks(b"".join(events), 3)))
    async with run_gateway(OPENAI.config(url), tmp_path) as gw:
        resp = await _post(gw, {**CODEX_FOR_GPT, "stream": True})
        usage, _, _, status = recorder().records[-1]
    assert resp.content.startswith(b"".join(events))
    name, last = events_of(resp.content)[-1]
    assert name == "error"
    assert last["sequence_number"] == 6  # numbered after the provider's last event
    assert "closed the stream" in last["message"]
    assert status == 502 and usage.estimated


FAILOVER = """
[plugins.chain]
path = "{router}"
"""


def _chain(tmp_path: Path, first: str, second: str) -> str:
    router = tmp_path / "chain.py"
    router.write_text(
        "from interlock.core import Plugin, hookimpl, RoutingDecision, Candidate\n"
        "class Chain(Plugin):\n    name = 'chain'\n    @hookimpl\n    def route(self, ctx):\n"
        f"        return RoutingDecision([Candidate({first!r}, 'gpt-4o'), "
        f"Candidate({second!r}, 'gpt-4o')], 'chain')\n"
    )
    return FAILOVER.format(router=router)


def _both(url: str) -> str:
    claude = ANTHROPIC.table(url).replace('models = ["claude-sonnet-4-6"]', 'models = ["gpt-4o"]')
    return OPENAI.table(url) + claude + f'\n[plugins.recorder]\npath = "{RECORDER}"\n'


async def test_failover_from_openai_to_claude_translates(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/responses", lambda rec: OPENAI.error)  # 429
    fake.on("/v1/messages", lambda rec: ANTHROPIC.answer(rec, False, False))
    config = _both(url) + _chain(tmp_path, "openai", "claude")
    async with run_gateway(config, tmp_path) as gw:
        resp = await _post(gw, CODEX_FOR_GPT | {"stream": False})
    assert resp.status_code == 200, resp.text
    assert resp.json()["output"][0]["content"][0]["text"] == TEXT
    native, translated = fake.requests
    assert native.json()["include"] == ["reasoning.encrypted_content"]
    assert "messages" in translated.json() and "include" not in translated.json()


async def test_failover_from_claude_to_openai_sends_the_original(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/messages", lambda rec: ANTHROPIC.error.__class__(529, b"{}", {}))
    fake.on("/v1/responses", _answer)
    config = _both(url) + _chain(tmp_path, "claude", "openai")
    async with run_gateway(config, tmp_path) as gw:
        resp = await _post(gw, CODEX_FOR_GPT)
    assert resp.status_code == 200, resp.text
    translated, native = fake.requests
    assert "system" in translated.json()
    assert native.body == json.dumps(CODEX_FOR_GPT, ensure_ascii=False).encode()


async def test_openai_ids_are_fetched_deleted_and_continued_at_openai(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    stored = native_response("gpt-4o", False)
    fake.on("/v1/responses/resp_abc", lambda rec: Reply.json(stored))
    fake.on(
        "/v1/responses/resp_gone",
        lambda rec: Reply.json(
            {"error": {"message": "Response with id 'resp_gone' not found.", "type": "invalid"}},
            404,
        ),
    )
    fake.on("/v1/responses", _answer)
    async with run_gateway(OPENAI.config(url), tmp_path) as gw:
        async with httpx.AsyncClient(timeout=10) as client:
            got = await client.get(f"{gw}/v1/responses/resp_abc", headers=HEADERS)
            gone = await client.delete(f"{gw}/v1/responses/resp_gone", headers=HEADERS)
        chained = await _post(
            gw, {"model": "gpt-4o", "input": "more", "previous_response_id": "resp_abc"}
        )
    assert got.status_code == 200 and got.json() == stored
    assert gone.status_code == 404 and "resp_gone" in gone.json()["error"]["message"]
    get, delete, post = fake.requests
    assert (get.method, delete.method) == ("GET", "DELETE")
    assert get.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "codex-virtual-key" not in json.dumps(get.headers)
    assert chained.status_code == 200
    assert post.json()["previous_response_id"] == "resp_abc"  # passed through


async def test_an_openai_previous_response_id_is_a_404_where_only_claude_serves(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    async with run_gateway(ANTHROPIC.config(url), tmp_path) as gw:
        resp = await _post(
            gw,
            {"model": "claude-sonnet-4-6", "input": "more", "previous_response_id": "resp_abc"},
        )
        async with httpx.AsyncClient(timeout=10) as client:
            fetched = await client.get(f"{gw}/v1/responses/resp_abc")
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["code"] == "previous_response_not_found"
    assert error["param"] == "previous_response_id"
    assert fetched.status_code == 404  # no provider that stores OpenAI's responses
    assert not fake.requests
