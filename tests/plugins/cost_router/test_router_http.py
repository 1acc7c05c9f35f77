"""cost_router in the running gateway: tiers, feature routes, tenant overrides, aliases,
balancing across deployments, and the routing headers on both inbound formats, on
answers and on errors."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import structlog

from tests.plugins.routing import (
    EXAMPLE_ROUTER,
    HI,
    PROOF,
    answer,
    completion,
    gateway,
    identity_plugin,
    provider,
    recorder,
    served,
)
from tests.support import GUARD, Recorded, Reply

CODE = "Fix this:\n```python\ndef f(x):\n    return x[0]\n```"
TIERS = """
[plugins.cost_router]
tiers = [ { below = 0.3, model = "gpt-4o-mini" },
          { below = 0.7, model = "gpt-4o" },
          { below = 1.01, model = "claude-opus-4-6" } ]
features = { "support-bot" = "gpt-4o-mini", "code-review" = "claude-sonnet-4-6" }
aliases = { fast = "gpt-4o-mini", smart = "claude-opus-4-6" }
tenants = { acme = { tiers = [ { below = 2.0, model = "gpt-4o" } ] } }
"""


def providers(url: str) -> str:
    return provider("openai", url, ["gpt-4o", "gpt-4o-mini"]) + provider(
        "anthropic", url, ["claude-opus-4-6", "claude-sonnet-4-6"]
    )


async def test_tiers_route_auto_by_complexity_on_both_formats(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "openai")
    answer(fake, "anthropic")
    async with gateway(providers(url) + TIERS, tmp_path) as gw:
        simple = await gw.chat(HI)
        medium = await gw.messages([{"role": "user", "content": CODE}])
        complex_ = await gw.chat(PROOF)
        complex_msgs = await gw.messages(PROOF)
    assert [r.status_code for r in (simple, medium, complex_, complex_msgs)] == [200] * 4
    assert served(fake) == [
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
        "anthropic/claude-opus-4-6",
        "anthropic/claude-opus-4-6",
    ]
    assert simple.headers["x-interlock-route"] == "openai/gpt-4o-mini"
    assert simple.headers["x-interlock-route-reason"] == "tier<0.3 score=0.00"
    assert medium.headers["x-interlock-route"] == "openai/gpt-4o"
    assert medium.headers["x-interlock-route-reason"].startswith("tier<0.7 score=0.")
    assert complex_msgs.headers["x-interlock-route"] == "anthropic/claude-opus-4-6"
    assert complex_msgs.headers["x-interlock-route-reason"] == "tier<1.01 score=0.75"
    assert complex_msgs.json()["type"] == "message"  # still answered in Anthropic's shape


async def test_a_requested_model_is_served_as_asked(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "openai")
    async with gateway(providers(url) + TIERS, tmp_path) as gw:
        resp = await gw.chat(PROOF, model="gpt-4o-mini")
    assert served(fake) == ["openai/gpt-4o-mini"]
    assert resp.headers["x-interlock-route-reason"] == "default"  # no router had an opinion


async def test_feature_routes_and_aliases(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "openai")
    answer(fake, "anthropic")
    async with gateway(providers(url) + TIERS, tmp_path) as gw:
        by_header = await gw.chat(PROOF, model="gpt-4o", headers={"x-feature": "code-review"})
        by_tag = await gw.messages(HI, headers={"x-interlock-tags": "feature=support-bot"})
        by_metadata = await gw.chat(PROOF, metadata={"feature": "support-bot"})
        alias = await gw.chat(HI, model="smart")
    assert served(fake) == [
        "anthropic/claude-sonnet-4-6",
        "openai/gpt-4o-mini",
        "openai/gpt-4o-mini",
        "anthropic/claude-opus-4-6",
    ]
    assert by_header.headers["x-interlock-route-reason"] == "feature=code-review"
    assert by_tag.headers["x-interlock-route-reason"] == "feature=support-bot"
    assert by_metadata.headers["x-interlock-route-reason"] == "feature=support-bot"
    assert alias.headers["x-interlock-route-reason"] == "alias=smart"


async def test_a_tenant_has_its_own_tiers(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "openai")
    toml = providers(url) + identity_plugin(tmp_path) + TIERS
    async with gateway(toml, tmp_path) as gw:
        acme = await gw.chat(HI, headers={"x-tenant": "acme"})
        other = await gw.chat(HI, headers={"x-tenant": "globex"})
    assert served(fake) == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    assert acme.headers["x-interlock-route-reason"] == "tier<2 score=0.00"
    assert other.headers["x-interlock-route-reason"] == "tier<0.3 score=0.00"


async def test_routing_headers_are_on_errors_too_in_both_shapes(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(
        fake,
        "openai",
        lambda r: Reply.json(
            {"error": {"message": "bad max_tokens", "type": "invalid_request_error"}}, 400
        ),
    )
    async with gateway(providers(url) + TIERS, tmp_path) as gw:
        openai = await gw.chat(HI)
        anthropic = await gw.messages(HI)
    assert openai.status_code == anthropic.status_code == 400
    assert openai.json()["error"]["message"].endswith("bad max_tokens")
    assert anthropic.json()["type"] == "error"
    for resp in (openai, anthropic):
        assert resp.headers["x-interlock-route"] == "openai/gpt-4o-mini"  # the one tried
        assert resp.headers["x-interlock-route-reason"] == "tier<0.3 score=0.00"


async def test_an_unserved_tier_model_is_a_clear_503(upstream, tmp_path: Path) -> None:
    _, url = upstream
    toml = (
        provider("openai", url, ["gpt-4o-mini"])
        + """
[plugins.cost_router]
tiers = [ { below = 0.3, model = "gpt-4o-mini" }, { below = 1.01, model = "nowhere-model" } ]
"""
    )
    async with gateway(toml, tmp_path) as gw:
        resp = await gw.chat(PROOF)
    assert resp.status_code == 503
    assert "nowhere-model" in resp.json()["error"]["message"]


async def test_the_decision_reaches_the_log_line(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "openai")
    async with gateway(providers(url) + TIERS, tmp_path) as gw:
        with structlog.testing.capture_logs() as logs:
            await gw.chat(HI)
    line = next(e for e in logs if e["event"] == "request")
    assert line["route_reason"] == "tier<0.3 score=0.00"
    assert (line["provider"], line["model"]) == ("openai", "gpt-4o-mini")


# -- deployments --------------------------------------------------------------------------------
def two_deployments(url: str, strategy: str, extra: str = "") -> str:
    return (
        provider("east", url, ["gpt-4o"])
        + provider("west", url, ["gpt-4o"])
        + f'\n[plugins.cost_router]\nstrategy = "{strategy}"\n{extra}\n'
        + recorder()
    )


async def test_weighted_deployments_share_the_traffic_by_weight(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "east")
    answer(fake, "west")
    toml = two_deployments(url, "weighted", 'deployment_weights = { east = 3, "west/gpt-4o" = 1 }')
    async with gateway(toml, tmp_path) as gw:
        for _ in range(8):
            resp = await gw.chat(model="gpt-4o")
            assert resp.status_code == 200
        # Latencies are learnt only for the latency strategy, the one that reads them.
        assert gw.plugin("cost_router").balancer.latency("east", "gpt-4o") is None
    assert Counter(served(fake)) == {"east/gpt-4o": 6, "west/gpt-4o": 2}
    assert gw.records[0]["reason"] == "requested weighted"
    assert gw.records[0]["candidates"] == ["east/gpt-4o", "west/gpt-4o"]  # the other follows


async def test_least_busy_sends_to_the_idle_deployment(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    release = {"east": asyncio.Event(), "west": asyncio.Event()}
    arrived = {"east": asyncio.Event(), "west": asyncio.Event()}

    def held(name: str):  # type: ignore[no-untyped-def]
        async def handler(rec: Recorded) -> Reply:
            arrived[name].set()
            await release[name].wait()
            return Reply.json(completion(rec.json()["model"]))

        return handler

    answer(fake, "east", held("east"))
    answer(fake, "west", held("west"))
    async with gateway(two_deployments(url, "least_busy"), tmp_path) as gw:
        router = gw.plugin("cost_router")
        first = asyncio.ensure_future(gw.chat(model="gpt-4o"))
        await asyncio.wait_for(arrived["east"].wait(), GUARD)
        assert router.balancer.inflight("east", "gpt-4o") == 1
        second = asyncio.ensure_future(gw.chat(model="gpt-4o"))
        await asyncio.wait_for(arrived["west"].wait(), GUARD)
        release["west"].set()
        assert (await second).status_code == 200
        assert router.balancer.inflight("west", "gpt-4o") == 0  # post_response ended it
        # A tie would now go to east (turns alternate); east is busy, so west serves.
        assert (await gw.chat(model="gpt-4o")).status_code == 200
        release["east"].set()
        assert (await first).status_code == 200
        assert router.balancer.inflight("east", "gpt-4o") == 0
    assert served(fake) == ["east/gpt-4o", "west/gpt-4o", "west/gpt-4o"]


async def test_latency_strategy_learns_from_attempts(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "east")
    answer(fake, "west")
    async with gateway(two_deployments(url, "latency"), tmp_path) as gw:
        for _ in range(2):
            await gw.chat(model="gpt-4o")
        router = gw.plugin("cost_router")
        east = router.balancer.latency("east", "gpt-4o")
        west = router.balancer.latency("west", "gpt-4o")
        assert east is not None and west is not None  # both measured: untried went first
        router.balancer._latency[("west", "gpt-4o")] = east / 2  # west is now the fastest
        await gw.chat(model="gpt-4o")
    assert served(fake) == ["east/gpt-4o", "west/gpt-4o", "west/gpt-4o"]


async def test_a_failed_deployment_hands_over_to_its_sibling_without_failover_plugin(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    answer(fake, "east", lambda r: Reply.json({"error": {"message": "down"}}, 500))
    answer(fake, "west")
    async with gateway(two_deployments(url, "weighted"), tmp_path) as gw:
        resp = await gw.chat(model="gpt-4o")
    assert resp.status_code == 200
    assert served(fake) == ["east/gpt-4o", "west/gpt-4o"]
    assert resp.headers["x-interlock-route"] == "west/gpt-4o"


# -- alongside a custom router -------------------------------------------------------------------
def length_router(threshold: int = 200) -> str:
    return f"""
[plugins.length_router]
path = "{EXAMPLE_ROUTER}"
small = "gpt-4o-mini"
large = "gpt-4o"
threshold_chars = {threshold}
"""


async def test_a_custom_router_listed_first_takes_precedence(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    answer(fake, "openai")
    answer(fake, "anthropic")
    toml = providers(url) + length_router() + TIERS
    async with gateway(toml, tmp_path) as gw:
        resp = await gw.chat(PROOF)
        other = await gw.chat(HI, model="smart")  # not "auto": the example passes
    assert served(fake) == ["openai/gpt-4o-mini", "anthropic/claude-opus-4-6"]
    assert resp.headers["x-interlock-route-reason"].endswith("chars -> gpt-4o-mini")
    assert other.headers["x-interlock-route-reason"] == "alias=smart"


async def test_cost_router_passes_when_it_has_nothing_to_add(upstream, tmp_path: Path) -> None:
    """Listed first but with no tiers, it returns None and the example still routes."""
    fake, url = upstream
    answer(fake, "openai")
    toml = providers(url) + "\n[plugins.cost_router]\n" + length_router()
    async with gateway(toml, tmp_path) as gw:
        resp = await gw.chat([{"role": "user", "content": "x" * 500}])
    assert served(fake) == ["openai/gpt-4o"]
    assert resp.headers["x-interlock-route-reason"].endswith(" chars -> gpt-4o")


def anthropic_message(rec: Recorded) -> Reply:
    return Reply.json(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": rec.json()["model"],
            "content": [{"type": "text", "text": "hello"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 2},
        }
    )


async def test_native_anthropic_requests_are_scored_and_fail_over_across_formats(
    upstream, tmp_path: Path
) -> None:
    """/v1/messages to an anthropic provider keeps the client's own body (the score
    reads the Anthropic shape), and failover to an OpenAI-format provider still works."""
    fake, url = upstream
    fake.on("/claude/v1/messages", lambda r: Reply.json({"error": {"message": "x"}}, 529))
    answer(fake, "openai")
    toml = (
        provider("openai", url, ["gpt-4o", "gpt-4o-mini"])
        + f"""
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{url}/claude/v1"
api_key = "sk-test-claude-key-00000000"
models = ["claude-opus-4-6"]
"""
        + TIERS
        + '\n[plugins.failover]\nretries = 0\nchain = ["claude-opus-4-6", "gpt-4o"]\n'
        + recorder()
    )
    body = {
        "model": "auto",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are careful."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": PROOF[0]["content"]}]}],
    }
    async with gateway(toml, tmp_path) as gw:
        resp = await gw.client.post(f"{gw.url}/v1/messages", json=body)
    assert resp.status_code == 200
    assert resp.json()["type"] == "message"
    native, translated = fake.requests
    assert native.path == "/claude/v1/messages"
    assert native.json()["system"] == body["system"]  # the client's own body, model swapped
    assert native.json()["model"] == "claude-opus-4-6"
    assert translated.json()["model"] == "gpt-4o"
    assert resp.headers["x-interlock-route"] == "openai/gpt-4o"
    assert resp.headers["x-interlock-route-reason"] == (
        "tier<1.01 score=0.75; failover from claude/claude-opus-4-6 503"
    )


async def test_route_headers_are_kept_per_deployment_and_bounded(
    upstream, tmp_path: Path, monkeypatch
) -> None:
    """`x-interlock-route` is formatted once per (provider, model); the cache of those
    values stops growing at its bound (model names can come from clients) and what is
    past it is still formatted, and made safe, on every attempt."""
    fake, url = upstream
    answer(fake, "openai")
    async with gateway(providers(url) + TIERS, tmp_path) as gw:
        router = gw.plugin("cost_router")
        monkeypatch.setattr(router, "_MAX_CACHED", 1)
        first = await gw.chat(HI)
        second = await gw.chat(PROOF, model="gpt-4o")
        assert list(router._route_headers) == [("openai", "gpt-4o-mini")]
        assert router.route_header("p\r\n", "m\u00e9") == "p??/m?"
        assert len(router._route_headers) == 1
    assert first.headers["x-interlock-route"] == "openai/gpt-4o-mini"
    assert second.headers["x-interlock-route"] == "openai/gpt-4o"
