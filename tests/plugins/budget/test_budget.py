"""budget end to end: real gateways over HTTP, a fake upstream that reports usage, both
deployments (one gateway on memory:// and SQLite, or two sharing Redis and PostgreSQL)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
from structlog.testing import capture_logs

from interlock.core.pricing import Pricing
from interlock.core.store import open_store
from tests.plugins.conftest import drop_tenant_keys
from tests.plugins.policy import (
    CANARY,
    FINISHED,
    UPSTREAM_KEY,
    Deployment,
    Gw,
    chat_body,
    gateways,
    post,
    toml,
    usage_reply,
    who,
)
from tests.support import GUARD, FakeUpstream, Recorded, Reply, serve_asgi, sse

BUDGET = "\n[plugins.budget]\n"
GPT_4O = Pricing().price("gpt-4o")
assert GPT_4O is not None


def worst_case(body: bytes, max_tokens: int) -> float:
    """What the plugin reserves for `body` on gpt-4o: prompt at 4 bytes a token."""
    assert GPT_4O is not None
    return (len(body) // 4) * GPT_4O.input / 1e6 + max_tokens * GPT_4O.output / 1e6


async def ledger(store_url: str) -> list[tuple[object, ...]]:
    store = await open_store(store_url)
    try:
        return await store.fetchall(
            "SELECT tenant, key_id, feature, requested_model, model, cost_usd, status, estimated, "
            "period FROM spend_ledger ORDER BY id"
        )
    finally:
        await store.close()


async def counter(gws: list[Gw], key: str) -> float:
    """The counter at `key` once every gateway has sent its settles."""
    for gw in gws:
        await gw.plugin("budget").settler.flush()
    value: float = await gws[0].gateway.services.counters.get(key)
    return value


def period_key(gw: Gw, tenant: str) -> str:
    plugin = gw.plugin("budget")
    return f"bg:{plugin.periods.current(plugin.periods.clock()).id}:{tenant}"


# -- the promise: a burst cannot overspend ----------------------------------------------------
@pytest.mark.parametrize("share", [1.0, 0.5], ids=["actual-is-worst-case", "actual-is-half"])
async def test_200_concurrent_requests_never_overspend_a_budget_that_fits_about_20(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path, share: float
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply(lambda asked: int(asked * share)))
    body = chat_body(max_tokens=1000)
    reserve = worst_case(body, 1000)
    actual = worst_case(body, int(1000 * share))
    budget = 20.5 * reserve
    limits = {"tenant": {"budget_usd": budget}}
    async with gateways(toml(url, deployment, BUDGET), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=400)
        ) as client:
            replies = await asyncio.gather(
                *(
                    post(client, gws[i % len(gws)], body, who(tenant, limits=limits))
                    for i in range(200)
                )
            )
        spent_counter = await counter(gws, period_key(gws[0], tenant))
    admitted = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert len(admitted) + len(refused) == 200
    assert all(r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    assert len(fake.requests) == len(admitted)  # the refused were never forwarded
    rows = await ledger(deployment.store)
    spent = sum(float(row[5]) for row in rows)  # type: ignore[arg-type]
    assert len(rows) == len(admitted)
    assert spent <= budget  # the sum of actual cost never exceeds the budget
    assert spent_counter == pytest.approx(spent)
    # As many as possible: every request that was let through had its worst case
    # reserved, so at least floor(budget / worst case) fit, and never more than the
    # budget could pay for at the real cost.
    assert math.floor(budget / reserve) <= len(admitted) <= math.floor(budget / actual)
    if share == 1.0:
        assert len(admitted) == 20
        assert budget - spent < reserve  # not one more worst case would have fitted


async def test_a_restart_remembers_the_spend_on_the_ledger(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply(lambda asked: 100))
    body = chat_body(max_tokens=1000)
    cost = worst_case(body, 100)
    limits = {"tenant": {"budget_usd": 1.0}, "key": {"budget_usd": 0.5}}
    headers = who(tenant, key="k1", limits=limits, feature="search")
    text = toml(url, deployment, BUDGET + 'features = { "search" = 0.75 }\n')
    async with gateways(text, tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:
            for i in range(3):
                assert (await post(client, gws[i % len(gws)], body, headers)).status_code == 200
    if deployment.name == "redis":
        await drop_tenant_keys(tenant)  # as if Redis had lost everything: only the ledger knows
    async with gateways(text, tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:
            again = await post(client, gws[-1], chat_body(max_tokens=1), headers)
    assert again.status_code == 200
    left = float(again.headers["x-interlock-budget-remaining-usd"])
    # The key's budget is the tightest: 0.5 minus three requests, minus this one's worst case.
    assert left == pytest.approx(0.5 - 3 * cost - worst_case(chat_body(max_tokens=1), 1), abs=1e-6)


async def test_the_refusal_names_the_period_the_limit_and_the_spend(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    body = chat_body(max_tokens=1000)
    limits = {"tenant": {"budget_usd": 1.5 * worst_case(body, 1000)}}
    async with gateways(toml(url, deployment, BUDGET), tmp_path, deployment.instances) as gws:
        period = gws[0].plugin("budget").periods.current(gws[0].plugin("budget").periods.clock())
        async with httpx.AsyncClient() as client:
            ok = await post(client, gws[0], body, who(tenant, limits=limits))
            openai = await post(client, gws[-1], body, who(tenant, limits=limits))
            anthropic_body = msgspec.json.encode(
                {
                    "model": "gpt-4o",
                    "max_tokens": 1000,
                    "messages": [{"role": "user", "content": "x" * 396}],
                }
            )
            anthropic = await post(
                client, gws[0], anthropic_body, who(tenant, limits=limits), "/v1/messages"
            )
    assert ok.status_code == 200
    assert openai.status_code == 429
    error = openai.json()["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "budget_exceeded"
    message = error["message"]
    assert (
        f"the tenant '{tenant}' has a monthly budget of ${limits['tenant']['budget_usd']:.2f}"
        in message
    )
    assert f"for {period.id} (UTC)" in message
    assert f"${worst_case(body, 1000):.4f} is spent or reserved" in message
    assert anthropic.status_code == 429
    assert anthropic.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": anthropic.json()["error"]["message"]},
    }
    assert "budget exceeded" in anthropic.json()["error"]["message"]
    for reply in (ok, openai, anthropic):
        assert "x-interlock-budget-remaining-usd" in reply.headers
        assert CANARY not in reply.text


async def test_a_failed_request_releases_its_reservation(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on(
        "/v1/chat/completions",
        lambda r: Reply.json({"error": {"message": "overloaded", "type": "server_error"}}, 503),
    )
    body = chat_body(max_tokens=1000)
    limits = {"tenant": {"budget_usd": 1.5 * worst_case(body, 1000)}}  # room for one at a time
    async with gateways(toml(url, deployment, BUDGET), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:
            failed = [
                await post(client, gws[i % len(gws)], body, who(tenant, limits=limits))
                for i in range(3)
            ]
            assert [r.status_code for r in failed] == [503, 503, 503]  # never 429: released
            assert await counter(gws, period_key(gws[0], tenant)) == 0.0
            fake.on("/v1/chat/completions", usage_reply())
            assert (
                await post(client, gws[-1], body, who(tenant, limits=limits))
            ).status_code == 200
    rows = await ledger(deployment.store)
    assert len(rows) == 1  # a request that cost nothing leaves no spend row


async def test_budgets_per_key_feature_and_model_alias(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    body = chat_body(max_tokens=1000)
    one = worst_case(body, 1000)
    plugins = (
        BUDGET
        + f'features = {{ "support-bot" = {1.5 * one} }}\nmodels = {{ "gpt-4o" = {2.5 * one} }}\n'
    )
    async with gateways(toml(url, deployment, plugins), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:

            async def status(
                key: str | None = None, feature: str | None = None, model: str = "gpt-4o"
            ) -> int:
                limits = {"key": {"budget_usd": 1.5 * one}} if key == "tight" else None
                reply = await post(
                    client,
                    gws[0],
                    chat_body(max_tokens=1000, model=model),
                    who(tenant, key=key, limits=limits, feature=feature),
                )
                return reply.status_code

            assert [await status(feature="support-bot"), await status(feature="support-bot")] == [
                200,
                429,
            ]
            assert await status(feature="search") == 200  # another feature: only the model's budget
            assert await status(key="tight") == 429  # the model's budget (2.5) is used up now
            assert await status(key="tight", model="gpt-4o-mini") == 200
            assert await status(key="tight", model="gpt-4o-mini") == 200  # cheap: fits twice
    rows = await ledger(deployment.store)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (None, "support-bot", "gpt-4o"),
        (None, "search", "gpt-4o"),
        ("tight", None, "gpt-4o-mini"),
        ("tight", None, "gpt-4o-mini"),
    ]


# -- streams ------------------------------------------------------------------------------------
def _chunk(content: str | None = None, usage: dict[str, int] | None = None) -> dict[str, object]:
    delta = {} if content is None else {"content": content}
    choices = [] if usage is not None else [{"index": 0, "delta": delta, "finish_reason": None}]
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": choices,
        "usage": usage,
    }


async def test_a_stream_settles_when_it_ends_with_the_providers_usage(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream

    async def events() -> AsyncIterator[bytes]:
        for word in ("a", "b", "c"):
            yield sse(_chunk(word))
        yield sse(_chunk(usage={"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}))
        yield b"data: [DONE]\n\n"

    fake.on("/v1/chat/completions", lambda r: Reply.sse(events()))
    async with gateways(toml(url, deployment, BUDGET), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:
            reply = await post(client, gws[0], chat_body(max_tokens=500, stream=True), who(tenant))
            assert reply.status_code == 200 and reply.text.endswith("data: [DONE]\n\n")
            assert GPT_4O is not None
            real = (40 * GPT_4O.input + 3 * GPT_4O.output) / 1e6
            assert await counter(gws, period_key(gws[0], tenant)) == pytest.approx(real)
    rows = await ledger(deployment.store)
    assert [(r[5], r[6], r[7]) for r in rows] == [(pytest.approx(real), 200, 0)]


async def test_a_stream_the_client_left_settles_to_the_estimate(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    never = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        yield sse(_chunk("first"))
        yield sse(_chunk("second"))
        await never.wait()

    fake.on("/v1/chat/completions", lambda r: Reply.sse(events()))
    body = chat_body(max_tokens=2000, stream=True)
    settled = FINISHED[tenant] = asyncio.Event()
    async with gateways(toml(url, deployment, BUDGET), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:
            async with client.stream(
                "POST", f"{gws[0].url}/v1/chat/completions", content=body, headers=who(tenant)
            ) as resp:
                await asyncio.wait_for(anext(resp.aiter_bytes()), GUARD)
            # leaving the block closes the connection mid-stream
        await asyncio.wait_for(settled.wait(), GUARD)
        spent = await counter(gws, period_key(gws[0], tenant))
    del FINISHED[tenant]
    assert 0 < spent < worst_case(body, 2000)  # the rest of the worst case was released
    rows = await ledger(deployment.store)
    assert len(rows) == 1
    cost, status, estimated = rows[0][5], rows[0][6], rows[0][7]
    assert (status, estimated) == (499, 1)
    assert cost == pytest.approx(spent)


# -- counters down -------------------------------------------------------------------------------
# (tests/plugins/test_counters_down.py: 503 in the caller's shape, nothing forwarded)


# -- the soft threshold --------------------------------------------------------------------------
async def test_the_soft_threshold_warns_once_with_a_retried_webhook_and_no_key(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    receiver = FakeUpstream()
    delivered = asyncio.Event()
    attempts: list[Recorded] = []

    def hook(rec: Recorded) -> Reply:
        attempts.append(rec)
        if len(attempts) == 1:
            return Reply.json({"error": "try later"}, 500)  # the first delivery fails
        delivered.set()
        return Reply.json({"ok": True})

    receiver.on("/hooks/budget", hook)
    body = chat_body(max_tokens=1000)
    one = worst_case(body, 1000)
    limits = {"tenant": {"budget_usd": 10 * one}}
    async with serve_asgi(receiver) as hook_url:
        plugins = BUDGET + f'webhook_url = "{hook_url}/hooks/budget"\nwebhook_backoff_s = 0.01\n'
        async with gateways(toml(url, deployment, plugins), tmp_path, deployment.instances) as gws:
            with capture_logs() as logs:
                async with httpx.AsyncClient() as client:
                    for i in range(7):  # 70%: below the threshold
                        assert (
                            await post(client, gws[i % len(gws)], body, who(tenant, limits=limits))
                        ).status_code == 200
                    assert attempts == []
                    for i in range(3):  # 80%, 90%, 100%: crossed once
                        assert (
                            await post(client, gws[i % len(gws)], body, who(tenant, limits=limits))
                        ).status_code == 200
                    await asyncio.wait_for(delivered.wait(), GUARD)
                    for gw in gws:  # let every replica finish what it started
                        await gw.plugin("budget").settler.flush()
                        while gw.plugin("budget").alerts.pending:
                            await asyncio.wait_for(
                                asyncio.gather(*gw.plugin("budget").alerts.pending), GUARD
                            )
    assert len(attempts) == 2  # one failure, one retry that succeeded, nothing more
    alert = attempts[-1].json()
    assert alert["type"] == "budget.soft_threshold"
    assert (alert["tenant"], alert["scope"], alert["name"], alert["period"]) == (
        tenant,
        "tenant",
        tenant,
        "monthly",
    )
    assert alert["limit_usd"] == pytest.approx(10 * one)
    assert 8 * one - 1e-9 <= alert["spent_usd"] <= 10 * one + 1e-9
    for rec in attempts:
        assert CANARY.encode() not in rec.body and UPSTREAM_KEY.encode() not in rec.body
        assert "authorization" not in rec.headers
    warnings = [line for line in logs if line["event"] == "budget_soft_threshold"]
    assert len(warnings) == 1 and warnings[0]["tenant"] == tenant
    assert CANARY not in repr(logs)


# -- embeddings and responses without a body ------------------------------------------------------
async def test_embeddings_are_charged_at_the_input_price(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on(
        "/v1/embeddings",
        lambda r: Reply.json(
            {
                "object": "list",
                "data": [],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 1000, "total_tokens": 1000},
            }
        ),
    )
    body = msgspec.json.encode({"model": "text-embedding-3-small", "input": "hello"})
    async with gateways(
        toml(url, deployment, BUDGET + "tenant_usd = 1.0\n"), tmp_path, deployment.instances
    ) as gws:
        async with httpx.AsyncClient() as client:
            reply = await post(client, gws[0], body, who(tenant), "/v1/embeddings")
    assert reply.status_code == 200
    assert float(reply.headers["x-interlock-budget-remaining-usd"]) == pytest.approx(1.0, abs=1e-6)
    rows = await ledger(deployment.store)
    assert [(r[4], r[5]) for r in rows] == [
        ("text-embedding-3-small", pytest.approx(1000 * 0.02 / 1e6))
    ]


async def test_requests_are_charged_to_their_tenant_only(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    body = chat_body(max_tokens=1000)
    plugins = BUDGET + f"tenant_usd = {1.5 * worst_case(body, 1000)}\n"
    other = tenant + "-b"
    try:
        async with gateways(toml(url, deployment, plugins), tmp_path, deployment.instances) as gws:
            async with httpx.AsyncClient() as client:
                a = [await post(client, gws[i % len(gws)], body, who(tenant)) for i in range(2)]
                b = [await post(client, gws[i % len(gws)], body, who(other)) for i in range(2)]
    finally:
        await drop_tenant_keys(other)
    assert [r.status_code for r in a] == [200, 429]
    assert [r.status_code for r in b] == [200, 429]


# -- the plans remembered per caller and period -------------------------------------------------
async def test_a_new_period_and_changed_budgets_apply_at_once(
    upstream, deployment: Deployment, tenant: str, tmp_path: Path
) -> None:
    """Each caller's budgets and counter keys are built once per period and remembered,
    keyed on its budgets: a new period starts from nothing and a changed budget counts
    on the very next request."""
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    body = chat_body(max_tokens=1000)
    one = worst_case(body, 1000)
    tight = {"tenant": {"budget_usd": 1.5 * one}}  # room for one request
    async with gateways(toml(url, deployment, BUDGET), tmp_path, deployment.instances) as gws:
        async with httpx.AsyncClient() as client:

            async def status(limits: dict[str, dict[str, float]]) -> int:
                return (await post(client, gws[0], body, who(tenant, limits=limits))).status_code

            assert [await status(tight), await status(tight)] == [200, 429]
            assert await status({"tenant": {"budget_usd": 3.5 * one}}) == 200  # raised
            assert await status(tight) == 429
            plugin = gws[0].plugin("budget")
            later = plugin.periods.current(plugin.periods.clock()).end + 3600.0
            plugin.periods.clock = lambda: later  # the next month
            assert [await status(tight), await status(tight)] == [200, 429]
    rows = await ledger(deployment.store)
    assert rows[0][8] != rows[-1][8]  # the last spend is in the next period


async def test_the_remembered_budget_plans_are_bounded(
    upstream, tenant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("interlock.plugins.budget._MAX_PLANS", 3)
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    memory = Deployment("memory", "memory://", f"sqlite:///{tmp_path}/g.db", 1)
    body = chat_body(max_tokens=1000)
    limits = {"key": {"budget_usd": 1.5 * worst_case(body, 1000)}}
    async with gateways(toml(url, memory, BUDGET), tmp_path) as (gw,):
        async with httpx.AsyncClient() as client:
            for i in range(10):
                reply = await post(client, gw, body, who(tenant, key=f"k{i}", limits=limits))
                assert reply.status_code == 200
                assert len(gw.plugin("budget")._plans) <= 3
            # A forgotten plan is rebuilt the same: k0's budget is spent.
            again = await post(client, gw, body, who(tenant, key="k0", limits=limits))
            assert again.status_code == 429
