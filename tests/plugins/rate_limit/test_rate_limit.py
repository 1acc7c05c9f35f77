"""rate_limit end to end: real gateways over HTTP, a fake upstream, both deployments
(one gateway on memory://, or two sharing Redis and PostgreSQL)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import msgspec
import pytest

from interlock.core.counters.memory import MemoryCounters
from tests.core.test_counters import FakeClock
from tests.plugins.policy import (
    CANARY,
    Deployment,
    chat_body,
    gateways,
    post,
    toml,
    usage_reply,
    who,
)
from tests.support import Recorded, Reply

RATE_LIMIT = "\n[plugins.rate_limit]\n"
HEADERS = [
    f"x-ratelimit-{what}-{unit}"
    for unit in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
]


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """memory:// counters on a clock the test moves: time passes without sleeping."""
    clock = FakeClock()

    async def open_counters(url: str, **_: object) -> MemoryCounters:
        return MemoryCounters(clock=clock)

    monkeypatch.setattr("interlock.core.app.open_counters", open_counters)
    return clock


async def test_a_burst_lets_exactly_n_per_minute_through(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    limits = {"tenant": {"rpm": 10}}
    async with gateways(toml(url, deployment, RATE_LIMIT), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient(timeout=30) as client:
            replies = await asyncio.gather(
                *(
                    post(client, gws[i % len(gws)], chat_body(), who(tenant, limits=limits))
                    for i in range(40)
                )
            )
    statuses = [r.status_code for r in replies]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
    assert len(fake.requests) == 10  # the refused were never forwarded
    for r in replies:
        assert r.headers["x-ratelimit-limit-requests"] == "10"
        if r.status_code == 429:
            error = r.json()["error"]
            assert error["code"] == "rate_limit_exceeded"
            assert (
                f"tenant '{tenant}'" in error["message"]
                and "10 requests per minute" in error["message"]
            )
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
            # Honest: one request drains in 6 s, and the refusal says so (rounded up).
            wait_ms = int(r.headers["retry-after-ms"])
            assert 0 < wait_ms <= 6000
            assert r.headers["retry-after"] == str(math.ceil(wait_ms / 1000))
    remaining = sorted(
        int(r.headers["x-ratelimit-remaining-requests"]) for r in replies if r.status_code == 200
    )
    assert remaining == list(range(10))


async def test_retry_after_is_honest_a_retry_after_it_succeeds(
    upstream, fake_clock: FakeClock, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    limits = {"tenant": {"rpm": 2}}
    async with gateways(toml(url, memory, RATE_LIMIT), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:

            async def call() -> httpx.Response:
                return await post(client, gw, chat_body(), who(tenant, limits=limits))

            assert [(await call()).status_code for _ in range(2)] == [200, 200]
            refused = await call()
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "30"  # 60 s / 2 requests
            assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"
            fake_clock.advance(29.9)
            assert (await call()).status_code == 429  # not a moment early...
            fake_clock.advance(0.1)
            again = await call()
            assert again.status_code == 200  # ...and a retry after it succeeds
            assert again.headers["x-ratelimit-remaining-requests"] == "0"


async def test_every_response_carries_the_six_headers_of_the_tightest_limits(
    upstream, fake_clock: FakeClock, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply(lambda asked: 10))
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    limits = {"tenant": {"rpm": 100, "tpm": 10_000}, "key": {"rpm": 3, "tpm": 50_000}}
    body = chat_body(max_tokens=1000)
    reserved = len(body) // 4 + 1000
    async with gateways(toml(url, memory, RATE_LIMIT), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:
            first = await post(client, gw, body, who(tenant, key="k1", limits=limits))
            assert first.status_code == 200
            assert {h: first.headers[h] for h in HEADERS} == {
                "x-ratelimit-limit-requests": "3",  # the key's: tighter than the tenant's
                "x-ratelimit-remaining-requests": "2",
                "x-ratelimit-reset-requests": "20s",
                "x-ratelimit-limit-tokens": "10000",  # the tenant's
                "x-ratelimit-remaining-tokens": str(10_000 - reserved),
                "x-ratelimit-reset-tokens": f"{reserved * 6 / 1000:g}s",
            }
            # The reservation was settled to the real usage (prompt + 10 tokens).
            used = len(body) // 4 + 10
            second = await post(client, gw, body, who(tenant, key="k1", limits=limits))
            assert second.headers["x-ratelimit-remaining-tokens"] == str(10_000 - used - reserved)
            await post(client, gw, body, who(tenant, key="k1", limits=limits))
            refused = await post(client, gw, body, who(tenant, key="k1", limits=limits))
            assert refused.status_code == 429
            assert all(h in refused.headers for h in HEADERS)
            assert "the key 'k1'" in refused.json()["error"]["message"]
            # An upstream failure is a response too, and it gives its tokens back.
            fake.on("/v1/chat/completions", bad_request)
            other = await post(client, gw, body, who(tenant, key="k2", limits=limits))
            assert other.status_code == 400
            assert all(h in other.headers for h in HEADERS)
            after = await post(client, gw, body, who(tenant, key="k3", limits=limits))
            assert (
                int(after.headers["x-ratelimit-remaining-tokens"]) == 10_000 - 3 * used - reserved
            )


def bad_request(rec: Recorded) -> Reply:
    return Reply.json({"error": {"message": "bad", "type": "invalid_request_error"}}, 400)


async def test_a_refusal_by_the_key_takes_nothing_from_the_tenant(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    limits = {"tenant": {"rpm": 3}, "key": {"rpm": 1}}
    async with gateways(toml(url, deployment, RATE_LIMIT), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:

            async def call(key: str, i: int) -> int:
                reply = await post(
                    client, gws[i % len(gws)], chat_body(), who(tenant, key=key, limits=limits)
                )
                return reply.status_code

            assert [await call("a", 0), await call("a", 1), await call("a", 0)] == [200, 429, 429]
            assert [await call("b", 1), await call("c", 0)] == [200, 200]  # the tenant had 3
            assert await call("d", 1) == 429  # now the tenant's limit is used up


async def test_one_tenants_traffic_never_touches_anothers(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    other = tenant + "-other"
    plugins = RATE_LIMIT + "tenant = { rpm = 5 }\n"  # the default for every tenant
    try:
        async with gateways(toml(url, deployment, plugins), tmp_path, deployment.instances) as gws:
            async with httpx.AsyncClient(timeout=30) as client:
                noisy = await asyncio.gather(
                    *(post(client, gws[i % len(gws)], chat_body(), who(tenant)) for i in range(20))
                )
                quiet = [
                    await post(client, gws[i % len(gws)], chat_body(), who(other)) for i in range(5)
                ]
    finally:
        from tests.plugins.conftest import drop_tenant_keys

        await drop_tenant_keys(other)
    assert [r.status_code for r in noisy].count(200) == 5
    assert [r.status_code for r in quiet] == [200] * 5
    assert [r.headers["x-ratelimit-remaining-requests"] for r in quiet] == ["4", "3", "2", "1", "0"]


async def test_model_and_feature_limits_from_the_config(
    upstream, fake_clock: FakeClock, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    plugins = (
        RATE_LIMIT + 'models = { "gpt-4o" = { rpm = 1 } }\nfeatures = { "search" = { rpm = 2 } }\n'
    )
    async with gateways(toml(url, memory, plugins), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:
            big = [await post(client, gw, chat_body(model="gpt-4o"), who(tenant)) for _ in range(2)]
            assert [r.status_code for r in big] == [200, 429]
            assert "the model 'gpt-4o'" in big[1].json()["error"]["message"]
            small = [
                await post(client, gw, chat_body(model="gpt-4o-mini"), who(tenant))
                for _ in range(3)
            ]
            assert [r.status_code for r in small] == [200] * 3  # no limit on this model
            search = [
                await post(
                    client, gw, chat_body(model="gpt-4o-mini"), who(tenant, feature="search")
                )
                for _ in range(3)
            ]
            assert [r.status_code for r in search] == [200, 200, 429]
            # The limit is per tenant: another tenant's model budget is its own.
            assert (
                await post(client, gw, chat_body(model="gpt-4o"), who(tenant + "x"))
            ).status_code == 200


async def test_a_request_bigger_than_the_token_limit_waits_for_an_empty_bucket(
    upstream, fake_clock: FakeClock, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply(lambda asked: 5))
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    limits = {"tenant": {"tpm": 500}}
    async with gateways(toml(url, memory, RATE_LIMIT), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:
            # No max_tokens: 4096 output tokens reserved, more than the whole limit.
            first = await post(client, gw, chat_body(max_tokens=None), who(tenant, limits=limits))
            assert first.status_code == 200
            second = await post(client, gw, chat_body(max_tokens=None), who(tenant, limits=limits))
            assert second.status_code == 429  # the first one's real usage is still there…
            assert "this request needs 500" in second.json()["error"]["message"]
            fake_clock.advance(float(second.headers["retry-after"]))
            third = await post(client, gw, chat_body(max_tokens=None), who(tenant, limits=limits))
            assert third.status_code == 200  # …until it has drained


async def test_anthropic_callers_get_the_refusal_in_their_own_shape(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    body = msgspec.json.encode(
        {"model": "gpt-4o", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    )
    limits = {"tenant": {"rpm": 1}}
    async with gateways(toml(url, deployment, RATE_LIMIT), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:
            ok = await post(client, gws[0], body, who(tenant, limits=limits), "/v1/messages")
            refused = await post(client, gws[-1], body, who(tenant, limits=limits), "/v1/messages")
    assert ok.status_code == 200 and ok.json()["type"] == "message"
    assert refused.status_code == 429
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1
    assert CANARY not in refused.text


async def test_no_identity_counts_against_the_anonymous_tenant(
    upstream, fake_clock: FakeClock, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    plugins = RATE_LIMIT + "tenant = { rpm = 1 }\n"
    async with gateways(toml(url, memory, plugins), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:
            plain = {"content-type": "application/json"}
            replies = [await post(client, gw, chat_body(), plain) for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 429]
    assert "tenant 'anonymous'" in replies[1].json()["error"]["message"]


async def test_no_limit_no_headers_and_no_counters(
    upstream, fake_clock: FakeClock, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    async with gateways(toml(url, memory, RATE_LIMIT), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:
            reply = await post(client, gw, chat_body(), who(tenant))
        assert len(gw.gateway.services.counters) == 0
    assert reply.status_code == 200
    assert not any(h in reply.headers for h in HEADERS)


async def test_a_callers_changed_limits_apply_on_its_next_request(
    upstream, fake_clock: FakeClock, tenant: str, tmp_path: Path
) -> None:
    """Each caller's checks are built once and remembered, keyed on its limits: new
    limits from the auth plugin make a new plan, never the old one's."""
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    async with gateways(toml(url, memory, RATE_LIMIT), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:

            async def call(limits: dict[str, dict[str, float]]) -> httpx.Response:
                return await post(client, gw, chat_body(), who(tenant, key="k", limits=limits))

            first = await call({"key": {"rpm": 3}})
            assert first.headers["x-ratelimit-limit-requests"] == "3"
            second = await call({"key": {"rpm": 5}})
            assert second.headers["x-ratelimit-limit-requests"] == "5"
            assert "x-ratelimit-limit-tokens" not in second.headers
            third = await call({"key": {"rpm": 5, "tpm": 100_000}})
            assert third.headers["x-ratelimit-limit-tokens"] == "100000"
            refused = await call({"key": {"rpm": 0}})  # an identity may carry 0
            assert refused.status_code == 429
            assert "the key 'k' is allowed no requests per minute" in refused.text
            assert (await call({"key": {"rpm": 5}})).status_code == 200  # and back


async def test_the_remembered_plans_are_bounded(
    upstream, fake_clock: FakeClock, tenant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("interlock.plugins.rate_limit._MAX_PLANS", 3)
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    limits = {"key": {"rpm": 1}}
    async with gateways(toml(url, memory, RATE_LIMIT), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:
            for i in range(10):
                reply = await post(client, gw, chat_body(), who(tenant, key=f"k{i}", limits=limits))
                assert reply.status_code == 200
                assert len(gw.plugin("rate_limit")._plans) <= 3
            # A forgotten plan is rebuilt the same: k0's one request a minute is used up.
            again = await post(client, gw, chat_body(), who(tenant, key="k0", limits=limits))
            assert again.status_code == 429
