"""One audit record for every request, whatever its fate, in both inbound formats, with
who, what, where it went, how it ended and what it cost; never the caller's key; and
(durable) committed before the client has the whole answer."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.core.test_proxy_openai import COMPLETION, USAGE_CHUNK, chunk
from tests.plugins.audit.support import (
    CANARY_KEY,
    audit_table,
    by_request_id,
    policy_plugin,
    providers,
    records,
    store_bytes,
)
from tests.support import Recorded, Reply, run_gateway, sse

AUTH = {"authorization": f"Bearer {CANARY_KEY}"}
RESPONSE = {  # OpenAI's Responses API answer, relayed on the native path
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "gpt-4o",
    "output": [
        {
            "type": "message",
            "id": "m",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hi"}],
        }
    ],
    "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
}
HI = [{"role": "user", "content": "hi"}]


def answer(rec: Recorded) -> Reply:
    body = rec.json()
    if b"please fail" in rec.body and not rec.path.startswith("/backup"):
        return Reply.json({"error": {"message": "overloaded", "type": "server_error"}}, 503)
    if b"server error" in rec.body:
        return Reply.json({"error": {"message": "boom", "type": "server_error"}}, 500)
    if not body.get("stream"):
        return Reply.json(COMPLETION)

    async def events() -> AsyncIterator[bytes]:
        yield sse(chunk("Hel"))
        if b"hang" in rec.body:
            await asyncio.Event().wait()  # until the gateway goes away
        yield sse(chunk("lo")) + sse(chunk(None, "stop")) + sse(USAGE_CHUNK) + b"data: [DONE]\n\n"

    return Reply.sse(events())


def gateway_toml(url: str, tmp_path: Path, audit: str = "") -> str:
    return (
        "[server]\nmax_body_bytes = 4096\n"
        + providers(url)
        + policy_plugin(tmp_path)
        + audit_table(audit)
    )


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": HI, **extra}


def claude(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "max_tokens": 10, "messages": HI, **extra}


# (request id, method, path, headers, body or raw bytes, expected status, error type)
FATES: list[tuple[str, str, str, dict[str, str], Any, int, str | None]] = [
    ("ok-openai", "POST", "/v1/chat/completions", AUTH, chat(), 200, None),
    ("ok-stream", "POST", "/v1/chat/completions", AUTH, chat(stream=True), 200, None),
    ("ok-anthropic", "POST", "/v1/messages", AUTH, claude(), 200, None),
    ("ok-anthropic-stream", "POST", "/v1/messages", AUTH, claude(stream=True), 200, None),
    ("ok-responses", "POST", "/v1/responses", AUTH, {"model": "gpt-4o", "input": "hi"}, 200, None),
    ("bad-json", "POST", "/v1/chat/completions", AUTH, b"{not json", 400, "invalid_request_error"),
    ("no-key", "POST", "/v1/chat/completions", {}, chat(), 401, "authentication_error"),
    ("no-key-anthropic", "POST", "/v1/messages", {}, claude(), 401, "authentication_error"),
    ("forbidden", "POST", "/v1/chat/completions", {**AUTH, "x-forbid": "1"}, chat(), 403, "permission_error"),
    ("no-model", "POST", "/v1/chat/completions", AUTH, chat(model="nope"), 404, "model_not_found"),
    ("no-route", "POST", "/v1/nothing/here", AUTH, chat(), 404, "not_found_error"),
    ("wrong-method", "GET", "/v1/chat/completions", AUTH, None, 405, "method_not_allowed"),
    ("too-large", "POST", "/v1/chat/completions", AUTH, chat(pad="x" * 5000), 413, "request_too_large"),
    ("not-json", "POST", "/v1/chat/completions", {**AUTH, "content-type": "text/plain"}, b"hi", 415, "invalid_request_error"),
    ("limited", "POST", "/v1/messages", {**AUTH, "x-limit": "1"}, claude(), 429, "rate_limit_error"),
    ("upstream-5xx", "POST", "/v1/chat/completions", AUTH, chat(messages=[{"role": "user", "content": "server error"}]), 502, "upstream_error"),
    ("cache-hit", "POST", "/v1/chat/completions", {**AUTH, "x-ready": "1"}, chat(), 200, None),
    ("models", "GET", "/v1/models", AUTH, None, 200, None),
]  # fmt: skip


async def test_every_fate_has_exactly_one_record(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    fake.on("/v1/responses", lambda r: Reply.json(RESPONSE))
    async with run_gateway(gateway_toml(url, tmp_path), tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            for rid, method, path, headers, body, status, _ in FATES:
                sent = {**headers, "x-request-id": rid}
                if isinstance(body, bytes):
                    resp = await client.request(method, gw + path, content=body, headers=sent)
                else:
                    resp = await client.request(method, gw + path, json=body, headers=sent)
                assert resp.status_code == status, (rid, resp.text)
            # A client that leaves in the middle of a stream (499).
            hang = chat(stream=True, messages=[{"role": "user", "content": "hang"}])
            headers = {**AUTH, "x-request-id": "gone"}
            async with client.stream(
                "POST", gw + "/v1/chat/completions", json=hang, headers=headers
            ) as resp:
                async for _ in resp.aiter_bytes():
                    break
    # The gateway has stopped: every record, the 499 one included, is in the file.
    got = by_request_id(tmp_path / "interlock.db")
    assert len(records(tmp_path / "interlock.db")) == len(FATES) + 1
    for rid, method, path, headers, _, status, error in FATES:
        record = got[rid]
        assert (record["method"], record["path"]) == (method, path), rid
        assert (record["status"], record["error_type"]) == (status, error), rid
        assert record["inbound"] == (
            "anthropic" if path.startswith("/v1/messages")
            else "responses" if path.startswith("/v1/responses") else "openai"
        )  # fmt: skip
        authorised = "authorization" in headers and "x-forbid" not in headers
        assert (record["tenant"], record["key_id"]) == (
            ("acme", "key_7") if authorised else (None, None)
        ), rid
    assert (got["gone"]["status"], got["gone"]["error_type"]) == (499, "client_disconnected")
    assert got["ok-stream"]["stream"] == 1 and got["ok-openai"]["stream"] == 0
    assert got["models"]["endpoint"] == "models"
    assert got["cache-hit"]["attempts"] == [] and got["cache-hit"]["provider"] is None
    # Never the caller's key, in any byte of the store.
    assert CANARY_KEY.encode() not in store_bytes(tmp_path)


async def test_what_a_record_says(upstream, tmp_path: Path) -> None:
    """Tags, the route and its reason, each attempt of a failover, tokens, cost, timings."""
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    fake.on("/backup/v1/chat/completions", answer)
    router = tmp_path / "router.py"
    router.write_text(
        "from interlock.core import Candidate, Plugin, RoutingDecision, hookimpl\n"
        "class R(Plugin):\n"
        "    name = 'router'\n"
        "    @hookimpl\n"
        "    def route(self, ctx):\n"
        "        return RoutingDecision([Candidate('up', 'gpt-4o'), Candidate('backup', 'gpt-4o')], 'test chain')\n"
    )
    toml = gateway_toml(url, tmp_path) + f'\n[plugins.router]\npath = "{router}"\n'
    request = chat(messages=[{"role": "user", "content": "please fail"}], metadata={"user": "u-42"})
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(
            gw + "/v1/chat/completions",
            json=request,
            headers={**AUTH, "x-feature": "support-bot", "x-interlock-tags": "team=core"},
        )
    assert resp.status_code == 200
    (record,) = records(tmp_path / "interlock.db")
    assert record["request_id"] == resp.headers["x-request-id"]
    assert (record["tenant"], record["key_id"]) == ("acme", "key_7")
    assert (record["end_user"], record["feature"]) == ("u-42", "support-bot")
    assert record["tags"] == {"user": "u-42", "team": "core", "feature": "support-bot"}
    assert (record["endpoint"], record["requested_model"]) == ("chat", "gpt-4o")
    assert (record["provider"], record["model"], record["route_reason"]) == (
        "backup",
        "gpt-4o",
        "test chain",
    )
    assert [(a["provider"], a["status"], a["error"]) for a in record["attempts"]] == [
        ("up", 503, "overloaded_error"),
        ("backup", 200, None),
    ]
    assert (record["prompt_tokens"], record["completion_tokens"], record["cached_tokens"]) == (
        11,
        7,
        3,
    )
    assert record["cost_usd"] > 0
    assert record["latency_ms"] >= record["ttfb_ms"] > 0
    assert record["ts"].endswith("Z") and len(record["ts"]) == len("2026-11-25T11:59:00.123456Z")
    assert record["redactions"] == {} and record["request_body"] is None


async def test_a_durable_record_is_committed_before_the_answer_completes(
    upstream, tmp_path: Path
) -> None:
    """The writer lingers 50 ms to gather a batch; a durable request's answer still only
    completes after the commit, so the record is in the file the moment the client has
    its response (streamed or not). Non-durable answers do not wait for the writer."""
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    toml = gateway_toml(url, tmp_path, "batch_linger_ms = 50")
    db = tmp_path / "interlock.db"
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        for i, stream in enumerate([False, True, False, True]):
            rid = f"durable-{i}"
            resp = await client.post(
                gw + "/v1/chat/completions",
                json=chat(stream=stream),
                headers={**AUTH, "x-request-id": rid},
            )
            assert resp.status_code == 200
            with sqlite3.connect(db) as conn:
                found = conn.execute(
                    "SELECT status FROM audit_log WHERE request_id = ?", (rid,)
                ).fetchall()
            assert found == [(200,)], rid


async def test_non_durable_records_are_written_by_shutdown(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    toml = gateway_toml(url, tmp_path, "durable = false\nbatch_linger_ms = 20")
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        answers = await asyncio.gather(
            *(
                client.post(gw + "/v1/chat/completions", json=chat(), headers=AUTH)
                for _ in range(30)
            )
        )
    assert {r.status_code for r in answers} == {200}
    assert sorted(r["request_id"] for r in records(tmp_path / "interlock.db")) == sorted(
        r.headers["x-request-id"] for r in answers
    )


async def test_the_jsonl_sink_mirrors_the_store(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    toml = gateway_toml(url, tmp_path, 'jsonl_path = "audit.jsonl"')
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        for _ in range(3):
            assert (
                await client.post(gw + "/v1/chat/completions", json=chat(), headers=AUTH)
            ).status_code == 200
        assert (await client.post(gw + "/v1/chat/completions", json=chat())).status_code == 401
    lines = [
        msgspec.json.decode(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()
    ]
    stored = records(tmp_path / "interlock.db")
    assert [(d["request_id"], d["seq"], d["hash"]) for d in lines] == [
        (r["request_id"], r["seq"], r["hash"]) for r in stored
    ]
    assert lines[0]["attempts"][0]["provider"] == "up"  # JSON columns embedded as JSON


@pytest.mark.parametrize(
    "key", ["batch_max = 0", "queue_size = 0", 'when_full = "later"', 'master_key = "mk-literal"']
)
async def test_bad_settings_stop_start_up(tmp_path: Path, key: str) -> None:
    from interlock.core.app import create_app
    from interlock.core.config import ConfigError
    from tests.support import gateway_config

    with pytest.raises(ConfigError, match=r"\[plugins.audit\]"):
        app = create_app(gateway_config(audit_table(key), tmp_path))
        try:
            await app.state.gateway.open()
        finally:
            await app.state.gateway.close()


@pytest.mark.parametrize(
    "t",
    [0.0, 1.0, 1.9999999, 1732000000.9999996, 1732000000.0000004, 1732000000.5, -1.5]
    + [1732000000 + i * 0.1234567 for i in range(50)],
)
def test_record_times_are_formatted_as_datetime_formats_them(t: float) -> None:
    """iso() keeps the text of the last second it formatted; every value still reads as
    datetime's own formatting would (the chain hashes the text)."""
    from datetime import UTC, datetime

    from interlock.plugins.audit.record import iso

    assert iso(t) == datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert iso(t + 1.0) == datetime.fromtimestamp(t + 1.0, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
