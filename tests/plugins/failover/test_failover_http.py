"""failover in the running gateway, against upstreams that fail on cue: a 500, a 429
with Retry-After, a hang past the read timeout, a reset connection, a closed port, a
stream that dies before or after its first event, and a 400 that must not fail over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interlock.core import Candidate
from tests.plugins.failover.faults import closed_port, resetting_server
from tests.plugins.routing import (
    EXAMPLE_ROUTER,
    Sleeps,
    answer,
    gateway,
    identity_plugin,
    provider,
    recorder,
    served,
    stream_of,
)
from tests.support import Recorded, Reply

FAIL_500 = Reply.json({"error": {"message": "boom", "type": "server_error"}}, 500)


def failover(extra: str = "") -> str:
    """The failover table: no retries and no backoff unless `extra` says otherwise."""
    defaults = [d for d in ("retries = 0", "backoff_base_s = 0.0") if d.split()[0] not in extra]
    return "\n[plugins.failover]\n" + "\n".join([*defaults, extra]) + "\n"


def pair(url: str, second_url: str | None = None, first_extra: str = "") -> str:
    """Two deployments of gpt-4o: `primary` first, then `secondary`."""
    return provider("primary", url, ["gpt-4o"], first_extra) + provider(
        "secondary", second_url or url, ["gpt-4o"]
    )


async def test_a_500_moves_on_to_the_sibling_deployment(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "primary", lambda r: FAIL_500)
    answer(fake, "secondary")
    async with gateway(pair(url) + failover() + recorder(), tmp_path) as gw:
        openai = await gw.chat(model="gpt-4o")
        anthropic = await gw.messages(model="gpt-4o")
    for resp in (openai, anthropic):
        assert resp.status_code == 200
        assert resp.headers["x-interlock-attempts"] == "2"
        assert resp.headers["x-interlock-route"] == "secondary/gpt-4o"
        assert resp.headers["x-interlock-route-reason"] == (
            "default; failover from primary/gpt-4o 502"
        )
    assert served(fake) == ["primary/gpt-4o", "secondary/gpt-4o"] * 2
    attempts = gw.records[0]["attempts"]
    assert [(a[0], a[2], a[3]) for a in attempts] == [
        ("primary", 502, "upstream_error"),
        ("secondary", 200, None),
    ]


async def test_a_400_does_not_fail_over(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "primary", lambda r: Reply.json({"error": {"message": "bad", "type": "x"}}, 400))
    answer(fake, "secondary")
    async with gateway(pair(url) + failover(), tmp_path) as gw:
        resp = await gw.chat(model="gpt-4o")
        msgs = await gw.messages(model="gpt-4o")
    assert resp.status_code == msgs.status_code == 400
    assert served(fake) == ["primary/gpt-4o", "primary/gpt-4o"]
    assert resp.headers["x-interlock-attempts"] == msgs.headers["x-interlock-attempts"] == "1"
    assert msgs.headers["x-interlock-route"] == "primary/gpt-4o"


async def test_a_quick_failure_is_retried_on_the_same_deployment_with_backoff(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    calls = []

    def flaky(rec: Recorded) -> Reply:
        calls.append(1)
        return (
            FAIL_500
            if len(calls) == 1
            else Reply.json(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 1,
                    "model": "gpt-4o",
                    "choices": [],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )
        )

    answer(fake, "primary", flaky)
    answer(fake, "secondary")
    toml = pair(url) + failover("retries = 2\nbackoff_base_s = 0.25")
    async with gateway(toml, tmp_path) as gw:
        sleeps = gw.plugin("failover").sleep = Sleeps()
        gw.plugin("failover").random = lambda: 0.5
        resp = await gw.chat(model="gpt-4o")
    assert resp.status_code == 200
    assert served(fake) == ["primary/gpt-4o", "primary/gpt-4o"]
    assert sleeps.waits == [0.1875]  # 0.25 nominal, equal jitter at 0.5: 0.125 + 0.0625
    assert resp.headers["x-interlock-route-reason"] == "default; retry primary/gpt-4o 502"


async def test_429_with_retry_after_moves_on_at_once_and_is_recorded(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    limited = Reply.json({"error": {"message": "slow down"}}, 429, headers={"retry-after": "7"})
    answer(fake, "primary", lambda r: limited)
    answer(fake, "secondary")
    toml = pair(url) + failover("retries = 3") + recorder()
    async with gateway(toml, tmp_path) as gw:
        sleeps = gw.plugin("failover").sleep = Sleeps()
        resp = await gw.chat(model="gpt-4o")
    assert resp.status_code == 200
    assert served(fake) == ["primary/gpt-4o", "secondary/gpt-4o"]
    assert sleeps.waits == []  # another deployment was free: no waiting
    assert gw.records[0]["attempts"][0] == ("primary", "gpt-4o", 429, "rate_limit_error", 7.0)


async def test_the_last_deployment_is_retried_after_its_retry_after(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    calls = []

    def limited_once(rec: Recorded) -> Reply:
        calls.append(1)
        if len(calls) == 1:
            return Reply.json(
                {"error": {"message": "slow down"}}, 429, headers={"retry-after": "2"}
            )
        return Reply.json(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o",
                "choices": [],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    answer(fake, "primary", limited_once)
    toml = provider("primary", url, ["gpt-4o"]) + failover("retries = 1")
    async with gateway(toml, tmp_path) as gw:
        sleeps = gw.plugin("failover").sleep = Sleeps()
        resp = await gw.chat(model="gpt-4o")
    assert resp.status_code == 200
    assert sleeps.waits == [2.0]  # never sooner than the upstream asked
    assert resp.headers["x-interlock-attempts"] == "2"


@pytest.mark.parametrize(
    ("retry_after", "timeout_header"),
    [("60", None), ("5", "2")],  # longer than max_retry_wait_s / than the deadline left
    ids=["too-long", "past-the-deadline"],
)
async def test_a_wait_that_cannot_pay_off_is_not_waited(
    upstream, tmp_path: Path, retry_after: str, timeout_header: str | None
) -> None:
    fake, url = upstream
    limited = Reply.json({"error": {"message": "later"}}, 429, headers={"retry-after": retry_after})
    answer(fake, "primary", lambda r: limited)
    toml = provider("primary", url, ["gpt-4o"]) + failover("retries = 1\nmax_retry_wait_s = 10")
    headers = {"x-interlock-timeout-s": timeout_header} if timeout_header else None
    async with gateway(toml, tmp_path) as gw:
        sleeps = gw.plugin("failover").sleep = Sleeps()
        resp = await gw.chat(model="gpt-4o", headers=headers)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == retry_after  # the client learns when to come back
    assert sleeps.waits == []
    assert len(fake.requests) == 1


async def test_a_hang_past_the_read_timeout_moves_on(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    never = asyncio.Event()

    async def hang(rec: Recorded) -> Reply:
        await never.wait()
        return FAIL_500

    answer(fake, "primary", hang)
    answer(fake, "secondary")
    toml = pair(url, first_extra="read_timeout = 0.2") + failover("retries = 2")
    async with gateway(toml, tmp_path) as gw:
        sleeps = gw.plugin("failover").sleep = Sleeps()
        resp = await gw.chat(model="gpt-4o")
    assert resp.status_code == 200
    assert resp.headers["x-interlock-route"] == "secondary/gpt-4o"
    # A slow failure is not retried on the same deployment while another is free.
    assert served(fake) == ["primary/gpt-4o", "secondary/gpt-4o"]
    assert sleeps.waits == []


async def test_a_reset_connection_moves_on(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "secondary")
    async with resetting_server() as (reset_url, seen):
        toml = (
            provider("primary", reset_url, ["gpt-4o"])
            + provider("secondary", url, ["gpt-4o"])
            + failover()
        )
        async with gateway(toml, tmp_path) as gw:
            resp = await gw.chat(model="gpt-4o")
    assert resp.status_code == 200
    assert len(seen) == 1  # the request did reach the resetting server
    assert resp.headers["x-interlock-route"] == "secondary/gpt-4o"


async def test_a_refused_connection_moves_on(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "secondary")
    toml = (
        provider("primary", f"http://127.0.0.1:{closed_port()}", ["gpt-4o"])
        + provider("secondary", url, ["gpt-4o"])
        + failover()
        + recorder()
    )
    async with gateway(toml, tmp_path) as gw:
        resp = await gw.messages(model="gpt-4o")
    assert resp.status_code == 200
    assert gw.records[0]["attempts"][0][3] == "upstream_unreachable"


async def test_a_stream_fails_over_before_its_first_event(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "primary", lambda r: FAIL_500)
    answer(fake, "secondary")
    async with gateway(pair(url) + failover(), tmp_path) as gw:
        resp = await gw.chat(model="gpt-4o", stream=True)
        msgs = await gw.messages(model="gpt-4o", stream=True)
    assert resp.status_code == msgs.status_code == 200
    assert b"data: [DONE]" in resp.content
    assert b"message_stop" in msgs.content
    assert (
        resp.headers["x-interlock-route"] == msgs.headers["x-interlock-route"] == "secondary/gpt-4o"
    )
    assert resp.headers["x-interlock-attempts"] == "2"


async def test_a_stream_that_dies_after_its_first_event_does_not_fail_over(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream

    async def dies() -> AsyncIterator[bytes]:
        async for event in stream_of("gpt-4o"):
            yield event
            raise RuntimeError("connection closed mid-stream")

    answer(fake, "primary", lambda r: Reply.sse(dies()))
    answer(fake, "secondary")
    async with gateway(pair(url) + failover(), tmp_path) as gw:
        resp = await gw.chat(model="gpt-4o", stream=True)
    assert resp.status_code == 200
    events = [e for e in resp.content.split(b"\n\n") if e]
    assert b'"Hel"' in events[0]
    assert events[-1].startswith(b'data: {"error":')  # the client is told, not misled
    assert served(fake) == ["primary/gpt-4o"]  # bytes reached the client: no second try


# -- chains ---------------------------------------------------------------------------------------
def reference(url: str) -> str:
    return (
        provider("openai", url, ["gpt-4o", "gpt-4o-mini"])
        + provider("anthropic", url, ["claude-opus-4-6", "claude-sonnet-4-6"])
        + provider("google", url, ["gemini-1.5-pro"])
    )


async def test_the_global_chain_is_followed_in_order(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "openai", lambda r: FAIL_500)
    answer(fake, "anthropic", lambda r: FAIL_500)
    answer(fake, "google")
    toml = (
        reference(url)
        + failover('chain = ["gpt-4o", "claude-sonnet-4-6", "gemini-1.5-pro"]')
        + recorder()
    )
    async with gateway(toml, tmp_path) as gw:
        resp = await gw.chat(model="gpt-4o")
        opus = await gw.chat(model="claude-opus-4-6")  # not in the chain: the whole chain
    assert resp.status_code == opus.status_code == 200
    assert served(fake)[:3] == [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-6",
        "google/gemini-1.5-pro",
    ]
    assert gw.records[1]["candidates"] == [
        "anthropic/claude-opus-4-6",
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-6",
        "google/gemini-1.5-pro",
    ]
    assert resp.headers["x-interlock-attempts"] == "3"


async def test_a_per_model_chain_wins_and_identity_models_are_respected(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    answer(fake, "openai", lambda r: FAIL_500)
    answer(fake, "anthropic")
    answer(fake, "google")
    toml = (
        reference(url)
        + identity_plugin(tmp_path)
        + failover(
            'chain = ["gpt-4o", "claude-sonnet-4-6"]\n'
            'chains = { "gpt-4o" = ["gemini-1.5-pro", "claude-sonnet-4-6"] }'
        )
        + recorder()
    )
    async with gateway(toml, tmp_path) as gw:
        await gw.chat(model="gpt-4o")
        limited = await gw.chat(
            model="gpt-4o", headers={"x-tenant": "t", "x-models": "gpt-4o,claude-sonnet-4-6"}
        )
    assert gw.records[0]["candidates"] == [
        "openai/gpt-4o",
        "google/gemini-1.5-pro",
        "anthropic/claude-sonnet-4-6",
    ]
    # This tenant may not use gemini: failover never adds it.
    assert gw.records[1]["candidates"] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]
    assert limited.headers["x-interlock-route"] == "anthropic/claude-sonnet-4-6"


async def test_embeddings_get_sibling_deployments_but_no_chat_chain(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/primary/v1/embeddings", lambda r: FAIL_500)
    fake.on(
        "/secondary/v1/embeddings",
        lambda r: Reply.json(
            {
                "object": "list",
                "data": [],
                "model": "emb",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ),
    )
    toml = (
        provider("primary", url, ["emb", "gpt-4o"])
        + provider("secondary", url, ["emb"])
        + failover('chain = ["gpt-4o"]')
        + recorder()
    )
    async with gateway(toml, tmp_path) as gw:
        resp = await gw.client.post(f"{gw.url}/v1/embeddings", json={"model": "emb", "input": "x"})
    assert resp.status_code == 200
    assert gw.records[0]["candidates"] == ["primary/emb", "secondary/emb"]


async def test_the_example_router_works_alongside_both_plugins(upstream, tmp_path: Path) -> None:
    """examples/length_router.py decides first; cost_router passes on its requests and
    failover still backs its choice up with the model's other deployment."""
    fake, url = upstream
    answer(fake, "primary", lambda r: FAIL_500)
    answer(fake, "secondary")
    toml = (
        provider("primary", url, ["gpt-4o", "gpt-4o-mini"])
        + provider("secondary", url, ["gpt-4o"])
        + f"""
[plugins.length_router]
path = "{EXAMPLE_ROUTER}"
small = "gpt-4o-mini"
large = "gpt-4o"
threshold_chars = 200

[plugins.cost_router]
tiers = [ {{ below = 1.01, model = "gpt-4o-mini" }} ]
"""
        + failover()
    )
    async with gateway(toml, tmp_path) as gw:
        resp = await gw.chat([{"role": "user", "content": "x" * 500}])
    assert resp.status_code == 200
    assert served(fake) == ["primary/gpt-4o", "secondary/gpt-4o"]
    assert resp.headers["x-interlock-route-reason"].startswith("528 chars -> gpt-4o; failover")


async def test_the_candidate_plans_are_cached_and_bounded(
    upstream, tmp_path: Path, monkeypatch
) -> None:
    """What failover adds to a decision is worked out once per (endpoint, candidates);
    past the bound it is worked out per request, and the answer is the same."""
    fake, url = upstream
    answer(fake, "a")
    answer(fake, "b")
    toml = (
        provider("a", url, ["gpt-4o", "gpt-4o-mini"])
        + provider("b", url, ["gpt-4o"])
        + '\n[plugins.failover]\nchain = ["gpt-4o-mini", "gpt-4o"]\n'
    )
    async with gateway(toml, tmp_path) as gw:
        failover = gw.plugin("failover")
        monkeypatch.setattr(failover, "_MAX_CACHED", 1)
        for model in ("gpt-4o-mini", "gpt-4o", "gpt-4o"):
            assert (await gw.chat(model=model)).status_code == 200
        assert list(failover._plans) == [("chat", Candidate("a", "gpt-4o-mini"))]
        plan = failover._plans["chat", Candidate("a", "gpt-4o-mini")]
        assert [c for c, _, _ in plan] == [
            Candidate("a", "gpt-4o-mini"),
            Candidate("a", "gpt-4o"),
            Candidate("b", "gpt-4o"),
        ]
        assert [k for _, _, k in plan][-1] == "circuit:b/gpt-4o"
