"""One deadline per request across every attempt and failover: a chain of upstreams that
never answer is cut at the deadline (504 `deadline_exceeded` in the caller's shape), not
after each candidate's own read timeout in turn.

No test measures time: each asserts which attempts were made and how they ended, and a
hang guard (GUARD) fails the test if the gateway waited for the 30 s read timeouts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core.test_proxy_openai import config
from tests.support import GUARD, Recorded, Reply, local_plugin, run_gateway

SEEN: list[Any] = []  # (status, [(model, status, error), ...]) per request, from post_response
PRELUDE = "from tests.core.test_deadline import SEEN\n"
CHAIN = """
@hookimpl
def route(self, ctx):
    chain = ctx.headers.get("x-chain", "fails,hangs-1,hangs-2").split(",")
    return RoutingDecision([Candidate("up", model) for model in chain], "chain")

@hookimpl
def post_response(self, ctx):
    SEEN.append((ctx.status, [(a.model, a.status, a.error) for a in ctx.attempts]))
"""
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()


async def _never_answers(rec: Recorded) -> Reply:
    """ "fails" is overloaded at once; every other model never answers at all."""
    if rec.json()["model"] == "fails":
        return Reply.json({"error": {"message": "overloaded"}}, 503)
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("inbound", "stream", "how", "chain"),
    [
        ("openai", False, "header", "fails,hangs-1,hangs-2"),
        ("anthropic", False, "header", "fails,hangs-1,hangs-2"),
        ("openai", True, "header", "fails,hangs-1,hangs-2"),
        ("openai", False, "config", "fails,hangs-1,hangs-2"),
        ("openai", False, "header", "hangs-1,hangs-2,hangs-3"),
    ],
)
async def test_the_deadline_cuts_a_chain_of_hanging_upstreams(
    upstream, tmp_path: Path, inbound: str, stream: bool, how: str, chain: str
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", _never_answers)
    server = "request_timeout_s = 0.5" if how == "config" else ""
    toml = config(url, extra="read_timeout = 30.0", server=server)
    toml += local_plugin(tmp_path, "chain", CHAIN, PRELUDE)
    headers = {"x-chain": chain}
    if how == "header":
        headers["x-interlock-timeout-s"] = "0.5"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    body["max_tokens"] = 16
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient(timeout=GUARD) as client:
        resp = await asyncio.wait_for(
            client.post(gw + PATHS[inbound], json=body, headers=headers), GUARD
        )
    assert resp.status_code == 504
    if inbound == "anthropic":  # Anthropic's closed set of error types has timeout_error
        assert resp.json()["type"] == "error"
        assert resp.json()["error"]["type"] == "timeout_error"
        assert "deadline" in resp.json()["error"]["message"]
    else:
        assert resp.json()["error"]["type"] == "deadline_exceeded"
    [(status, attempts)] = SEEN
    assert status == 504
    # An overloaded candidate fails over; the first hanging one uses up what is left of
    # the deadline, so the candidates after it are never tried (each would otherwise
    # have waited for its 30 s read timeout, and the guard would have failed the test).
    # (On a machine slow enough, the deadline could even pass during the first try.)
    models = chain.split(",")
    tried = [model for model, _, _ in attempts]
    assert tried and tried == models[: len(tried)]
    assert len(tried) <= models.index("hangs-1") + 1
    assert attempts[-1][1:] == (504, "deadline_exceeded")
    assert all(status == 503 for _, status, _ in attempts[:-1])
    assert [r.json()["model"] for r in fake.requests] == tried


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf", "nan", ""])
@pytest.mark.parametrize("inbound", ["openai", "anthropic"])
async def test_an_invalid_timeout_header_is_a_400(
    upstream, tmp_path: Path, value: str, inbound: str
) -> None:
    fake, url = upstream
    toml = config(url) + local_plugin(tmp_path, "chain", CHAIN, PRELUDE)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient(timeout=GUARD) as client:
        resp = await client.post(
            gw + PATHS[inbound], json=body, headers={"x-interlock-timeout-s": value}
        )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "x-interlock-timeout-s" in error["message"]
    if inbound == "anthropic":
        assert resp.json()["type"] == "error"
    assert SEEN == [(400, [])]
    assert fake.requests == []


async def test_a_timeout_header_above_the_maximum_is_capped_not_refused(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", _never_answers)
    toml = config(url, server="request_timeout_s = 0.5\nmax_request_timeout_s = 0.5")
    toml += local_plugin(tmp_path, "chain", CHAIN, PRELUDE)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient(timeout=GUARD) as client:
        resp = await asyncio.wait_for(
            client.post(
                f"{gw}/v1/chat/completions", json=body, headers={"x-interlock-timeout-s": "86400"}
            ),
            GUARD,
        )
    assert resp.status_code == 504
    assert resp.json()["error"]["type"] == "deadline_exceeded"
