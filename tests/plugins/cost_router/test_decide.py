"""The pure parts of cost_router: which model (feature route, alias, tier, requested),
per-tenant overrides, settings validation, and the three balancing strategies."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest

from interlock.core import Candidate, ConfigError
from interlock.plugins.cost_router.balance import Balancer
from interlock.plugins.cost_router.decide import Settings, choose, routes_for, validate
from interlock.plugins.cost_router.score import vector

HI = msgspec.json.encode({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
PROOF = msgspec.json.encode(
    {
        "model": "auto",
        "messages": [{"role": "user", "content": "Prove it rigorously, step by step."}],
    }
)

SETTINGS = msgspec.convert(
    {
        "tiers": [
            {"below": 0.3, "model": "gpt-4o-mini"},
            {"below": 0.7, "model": "gpt-4o"},
            {"below": 1.01, "model": "claude-opus-4-6"},
        ],
        "features": {"support-bot": "gpt-4o-mini", "code-review": "claude-sonnet-4-6"},
        "aliases": {"fast": "gpt-4o-mini", "smart": "claude-opus-4-6"},
        "tenants": {
            "acme": {
                "tiers": [
                    {"below": 0.5, "model": "acme-small"},
                    {"below": 2, "model": "acme-large"},
                ],
                "features": {"support-bot": "acme-support"},
            },
            "strict": {"force": True},
        },
    },
    Settings,
)


def decide(
    requested: str = "auto",
    body: bytes | None = HI,
    feature: str | None = None,
    tenant: str | None = None,
    settings: Settings = SETTINGS,
) -> tuple[str, str] | None:
    choice = choose(
        routes_for(settings, tenant),
        alias=settings.alias,
        requested=requested,
        feature=feature,
        chat_body=body,
    )
    return None if choice is None else (choice.model, choice.reason)


def test_tiers_apply_to_the_alias_model() -> None:
    assert decide() == ("gpt-4o-mini", "tier<0.3 score=0.00")
    assert decide(body=PROOF) == ("claude-opus-4-6", "tier<1.01 score=0.75")


def test_a_requested_model_is_respected_unless_forced() -> None:
    assert decide("gpt-4o") is None
    assert decide("gpt-4o", tenant="strict") == ("gpt-4o-mini", "tier<0.3 score=0.00")


def test_feature_routes_win_and_apply_to_chat_only() -> None:
    assert decide("gpt-4o", feature="support-bot") == ("gpt-4o-mini", "feature=support-bot")
    assert decide(feature="code-review", body=PROOF) == ("claude-sonnet-4-6", "feature=code-review")
    assert decide("gpt-4o", feature="unknown-feature") is None
    assert decide("fast", body=None, feature="support-bot") == ("gpt-4o-mini", "alias=fast")


def test_aliases() -> None:
    assert decide("smart") == ("claude-opus-4-6", "alias=smart")
    assert decide("fast", body=None) == ("gpt-4o-mini", "alias=fast")  # embeddings too


def test_tenant_overrides_replace_tiers_and_extend_features() -> None:
    assert decide(tenant="acme") == ("acme-small", "tier<0.5 score=0.00")
    assert decide(tenant="acme", body=PROOF) == ("acme-large", "tier<2 score=0.75")
    assert decide("x", tenant="acme", feature="support-bot") == (
        "acme-support",
        "feature=support-bot",
    )
    assert decide("x", tenant="acme", feature="code-review") == (
        "claude-sonnet-4-6",
        "feature=code-review",
    )
    assert decide(tenant="nobody") == decide()


def test_tiers_that_stop_short_of_one_send_the_rest_to_the_last_tier() -> None:
    short = msgspec.convert(
        {"tiers": [{"below": 0.2, "model": "a"}, {"below": 0.5, "model": "b"}]}, Settings
    )
    assert decide(body=PROOF, settings=short) == ("b", "tier>=0.5 score=0.75")


def test_custom_weights_change_the_score() -> None:
    settings = msgspec.convert(
        {**msgspec.to_builtins(SETTINGS), "weights": {"reasoning": 0.2}}, Settings
    )
    weights = vector(validate(settings))
    choice = choose(
        routes_for(settings, None),
        alias="auto",
        requested="auto",
        feature=None,
        chat_body=PROOF,
        weights=weights,
    )
    assert choice is not None and choice.model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"tiers": [{"below": 0.7, "model": "b"}, {"below": 0.3, "model": "a"}]}, "tiers"),
        ({"tiers": [{"below": 0.7, "model": ""}]}, "tiers"),
        (
            {"tenants": {"t": {"tiers": [{"below": 1, "model": "a"}, {"below": 1, "model": "b"}]}}},
            "tenants.t.tiers",
        ),
        ({"force": True}, "force"),
        ({"weights": {"vibes": 1.0}}, "weights.vibes"),
        ({"weights": {"code": -1.0}}, "weights"),
        ({"deployment_weights": {"openai": 0}}, "deployment_weights"),
        ({"latency_alpha": 0}, "latency_alpha"),
    ],
)
def test_bad_settings_name_their_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"key `{key}`"):
        validate(msgspec.convert(table, Settings))


# -- balancing ----------------------------------------------------------------------------------
A, B, C = Candidate("a", "m"), Candidate("b", "m"), Candidate("c", "m")
DEPLOYMENTS = (A, B, C)


def test_weighted_shares_follow_the_weights_exactly_and_interleave() -> None:
    balancer = Balancer("weighted", {"a": 3, "b/m": 1, "c": 1})
    orders = [balancer.order("m", DEPLOYMENTS) for _ in range(10)]
    firsts = "".join(o[0].provider for o in orders)
    assert Counter(firsts) == {"a": 6, "b": 2, "c": 2}
    assert "aaa" not in firsts  # smooth: no bursts of the heavy one
    # The others follow as fallbacks, heaviest first.
    assert all(o[1:] == ([B, C] if o[0] == A else [A, C if o[0] == B else B]) for o in orders)


def test_weighted_with_no_weights_is_round_robin_and_keeps_everyone_as_fallback() -> None:
    balancer = Balancer("weighted", {})
    orders = [balancer.order("m", DEPLOYMENTS) for _ in range(3)]
    assert [o[0] for o in orders] == [A, B, C]
    assert all(sorted(o, key=DEPLOYMENTS.index) == list(DEPLOYMENTS) for o in orders)


def test_latency_tries_the_untried_first_then_the_fastest() -> None:
    balancer = Balancer("latency", {}, alpha=0.5)
    assert balancer.order("m", DEPLOYMENTS)[0] == A
    balancer.observe("a", "m", 100.0)
    assert balancer.order("m", DEPLOYMENTS)[0] == B  # never measured: measured next
    balancer.observe("b", "m", 50.0)
    balancer.observe("c", "m", 80.0)
    assert balancer.order("m", DEPLOYMENTS) == [B, C, A]
    balancer.observe("b", "m", 150.0)  # EWMA: 50 + 0.5 * (150 - 50) = 100
    assert balancer.latency("b", "m") == 100.0
    assert balancer.order("m", DEPLOYMENTS) == [C, A, B]


def test_least_busy_prefers_the_fewest_in_flight_and_takes_turns_on_ties() -> None:
    balancer = Balancer("least_busy", {})
    assert [balancer.order("m", DEPLOYMENTS)[0] for _ in range(3)] == [A, B, C]
    balancer.acquire(A)
    balancer.acquire(A)
    balancer.acquire(B)
    assert balancer.order("m", DEPLOYMENTS)[0] == C
    balancer.acquire(C)
    balancer.acquire(C)
    assert balancer.order("m", DEPLOYMENTS)[0] == B
    for c in (A, A, B, C, C):
        balancer.release(c)
    assert (
        balancer.inflight("a", "m")
        == balancer.inflight("b", "m")
        == balancer.inflight("c", "m")
        == 0
    )
    balancer.release(A)  # an extra release never goes negative
    assert balancer.inflight("a", "m") == 0


def test_a_single_deployment_is_returned_as_is() -> None:
    for strategy in ("weighted", "latency", "least_busy"):
        assert Balancer(strategy, {}).order("m", (A,)) == [A]
