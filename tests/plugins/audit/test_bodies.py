"""Bodies in the audit store (`store_bodies = true`) and pii_redaction together: the
SQLite file, searched as bytes (its write-ahead log included), never holds a value the
detectors know, whatever happened to the request: redacted and answered (tokens restored
for the client, streamed or not, in both formats), blocked, or refused before redaction
ran. Without pii_redaction the bodies are stored as they were, and redaction counts are
in every record."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.plugins.audit.support import CANARY_KEY, audit_table, policy_plugin, records, store_bytes
from tests.plugins.pii_redaction.test_gateway import (
    ROUTES,
    VALUES,
    answer,
    answer_text,
    body,
    encoded,
)
from tests.support import Recorded, Reply, run_gateway

AUTH = {"authorization": f"Bearer {CANARY_KEY}"}


def toml(url: str, tmp_path: Path, pii: str | None = "") -> str:
    """Providers, the policy plugin first (it may refuse before redaction runs), then
    pii_redaction (unless None) and audit storing bodies."""
    out = f"""
[[providers]]
name = "up"
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-test-upstream"
models = ["gpt-4o"]

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{url}/v1"
api_key = "sk-ant-test-upstream"
models = ["sonnet"]
"""
    out += policy_plugin(tmp_path)
    if pii is not None:
        out += f"\n[plugins.pii_redaction]\n{pii}\n"
    return out + audit_table("store_bodies = true")


def assert_no_value_stored(tmp_path: Path) -> None:
    stored = store_bytes(tmp_path)
    for kind, value in VALUES.items():
        assert value.encode() not in stored, kind
        assert encoded(value) not in stored, kind
    assert CANARY_KEY.encode() not in stored


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "streamed"])
@pytest.mark.parametrize("route", list(ROUTES))
async def test_answered_requests_keep_no_value(
    upstream, tmp_path: Path, route: str, stream: bool
) -> None:
    fake, url = upstream
    for upstream_path in ("/v1/chat/completions", "/v1/messages", "/v1/responses"):
        fake.on(upstream_path, answer)
    path = ROUTES[route][0]
    # A translated /v1/responses turn is kept by the core for `previous_response_id` as
    # the client sent it (interlock_responses, same store); `store: false` keeps nothing.
    extra = {"store": False} if route == "responses-translated" else {}
    async with run_gateway(toml(url, tmp_path), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(gw + path, json=body(route, stream=stream, **extra), headers=AUTH)
    assert resp.status_code == 200
    # The client has its own values back...
    assert answer_text(resp, path, stream) == f"Noted: {VALUES['email']}, {VALUES['phone']}."
    # ...the record has the bodies, redacted, and the counts.
    (record,) = records(tmp_path / "interlock.db")
    assert "[EMAIL_1]" in record["request_body"] and "[SSN]" in record["request_body"]
    assert "Noted: [EMAIL" in record["response_body"]
    assert record["redactions"]["email"] == 2 and record["redactions"]["private_key"] == 1
    assert set(record["redactions"]) == set(VALUES)
    assert_no_value_stored(tmp_path)


async def test_blocked_and_early_refused_requests_keep_no_value(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    pii = 'actions = { ssn = "block" }'
    async with run_gateway(toml(url, tmp_path, pii), tmp_path) as gw, httpx.AsyncClient() as client:
        blocked = await client.post(gw + "/v1/chat/completions", json=body("openai"), headers=AUTH)
        limited = await client.post(
            gw + "/v1/chat/completions", json=body("openai"), headers={**AUTH, "x-limit": "1"}
        )
    assert (blocked.status_code, limited.status_code) == (400, 429)
    assert fake.requests == []
    by_status = {r["status"]: r for r in records(tmp_path / "interlock.db")}
    assert by_status[400]["error_type"] == "pii_blocked"
    assert by_status[400]["redactions"]["ssn"] == 1
    assert "[SSN]" in by_status[400]["request_body"]  # the blocked body, scrubbed
    assert by_status[429]["request_body"] is None  # redaction never saw it: not stored
    assert by_status[429]["redactions"] == {}
    assert_no_value_stored(tmp_path)


async def test_what_the_model_adds_is_scrubbed_in_the_store_only(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    leak = "Ask jane.roe@example.net, card 4242 4242 4242 4242."

    def reply(rec: Recorded) -> Reply:
        return Reply.json(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": leak},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    fake.on("/v1/chat/completions", reply)
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "who?"}]}
    async with run_gateway(toml(url, tmp_path), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(gw + "/v1/chat/completions", json=request, headers=AUTH)
    assert resp.json()["choices"][0]["message"]["content"] == leak
    (record,) = records(tmp_path / "interlock.db")
    content = json.loads(record["response_body"])["choices"][0]["message"]["content"]
    assert content == "Ask [EMAIL], card [CREDIT_CARD]."
    stored = store_bytes(tmp_path)
    assert b"jane.roe@example.net" not in stored and b"4242 4242 4242 4242" not in stored


async def test_without_pii_redaction_bodies_are_stored_as_sent(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", answer)
    async with (
        run_gateway(toml(url, tmp_path, pii=None), tmp_path) as gw,
        httpx.AsyncClient() as client,
    ):
        resp = await client.post(
            gw + "/v1/chat/completions", json=body("openai", stream=True), headers=AUTH
        )
    assert resp.status_code == 200
    (record,) = records(tmp_path / "interlock.db")
    assert (
        json.loads(record["request_body"])["messages"][0]["content"]
        == body("openai")["messages"][0]["content"]
    )
    assert record["response_body"] == '{"content":"Noted: ."}'  # no placeholders were sent
    assert VALUES["email"].encode() in store_bytes(tmp_path)
