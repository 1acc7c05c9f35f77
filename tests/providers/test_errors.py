"""Each provider's errors become the caller's error shape with the right status, and the
adapter marks which failures may fail over to the next candidate."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from interlock.core.config import ProviderConfig
from interlock.core.errors import upstream_error
from interlock.core.providers.anthropic import AnthropicProvider
from interlock.core.providers.base import HttpProvider
from interlock.core.providers.gemini import GeminiProvider
from tests.providers.upstreams import ANTHROPIC, GEMINI, UPSTREAM_KEY, install
from tests.support import Reply, run_gateway

ANTHROPIC_ERRORS = [
    # (upstream status, Anthropic error type, caller status, retryable)
    (400, "invalid_request_error", 400, False),
    (429, "rate_limit_error", 429, True),
    (500, "api_error", 502, True),
    (529, "overloaded_error", 503, True),
]
GEMINI_ERRORS = [
    (400, "INVALID_ARGUMENT", 400, False),
    (429, "RESOURCE_EXHAUSTED", 429, True),
    (503, "UNAVAILABLE", 503, True),
]


def provider(cls: type[HttpProvider], kind: str) -> HttpProvider:
    return cls(
        ProviderConfig(name=kind, kind=kind, base_url="https://example.test", api_key=UPSTREAM_KEY)
    )


@pytest.mark.parametrize(("status", "type_", "caller", "retryable"), ANTHROPIC_ERRORS)
async def test_anthropic_error_mapping(
    status: int, type_: str, caller: int, retryable: bool
) -> None:
    p = provider(AnthropicProvider, "anthropic")
    body = (
        b'{"type":"error","error":{"type":"'
        + type_.encode()
        + b'","message":"bad key '
        + UPSTREAM_KEY.encode()
        + b'"}}'
    )
    message, kind = p.error_message(body)
    err = upstream_error(p, status, {}, message, kind)
    await p.aclose()
    assert (err.status, err.retryable) == (caller, retryable)
    assert UPSTREAM_KEY not in err.message  # the provider's key never reaches the caller


@pytest.mark.parametrize(("status", "status_name", "caller", "retryable"), GEMINI_ERRORS)
async def test_gemini_error_mapping(
    status: int, status_name: str, caller: int, retryable: bool
) -> None:
    p = provider(GeminiProvider, "gemini")
    body = b'{"error":{"code":%d,"message":"nope","status":"%s"}}' % (status, status_name.encode())
    message, kind = p.error_message(body)
    err = upstream_error(p, status, {}, message, kind)
    await p.aclose()
    assert (err.status, err.retryable) == (caller, retryable)
    assert "nope" in err.message


ROUTER = """
from interlock.core import Candidate, RoutingDecision, hookimpl


class ClaudeThenGemini:
    name = "claude_then_gemini"

    def __init__(self, settings, services):
        pass

    @hookimpl
    def route(self, ctx):
        return RoutingDecision(
            [Candidate("claude", "claude-sonnet-4-6"), Candidate("gemini", "gemini-2.5-flash")],
            "test",
        )
"""


@pytest.mark.parametrize(
    ("status", "type_", "served_by"),
    [(529, "overloaded_error", "gemini"), (400, "invalid_request_error", None)],
)
async def test_failover_from_claude_to_gemini(
    status: int, type_: str, served_by: str | None, upstream, tmp_path: Path
) -> None:
    """A request in Anthropic's format fails over from an overloaded Claude to Gemini;
    a bad request is not retried elsewhere."""
    fake, url = upstream
    install(GEMINI, fake)
    error = {"type": "error", "error": {"type": type_, "message": "try later"}}
    fake.on("/v1/messages", lambda r: Reply.json(error, status))
    (tmp_path / "router.py").write_text(ROUTER)
    config = (
        ANTHROPIC.table(url)
        + GEMINI.table(url)
        + '\n[plugins.claude_then_gemini]\npath = "router.py"\n'
    )
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with run_gateway(config, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(f"{gw}/v1/messages", json=body)
    tried = [r.path for r in fake.requests]
    if served_by == "gemini":
        assert resp.status_code == 200
        assert resp.json()["content"][0]["text"] == "Grüezi from Zürich ☀️"
        assert tried == ["/v1/messages", "/v1beta/models/gemini-2.5-flash:generateContent"]
    else:
        assert resp.status_code == 400
        assert resp.json()["error"]["type"] == "invalid_request_error"
        assert tried == ["/v1/messages"]
