"""`interlock route --explain`: the score, each feature's contribution and the decision,
from plugins.toml's tiers, without sending anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlock.core.cli import main

CONFIG = """
[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "env:INTERLOCK_TEST_UNSET_KEY"
models = ["gpt-4o", "gpt-4o-mini"]

[[providers]]
name = "azure"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "env:INTERLOCK_TEST_UNSET_KEY"
models = ["gpt-4o"]

[[providers]]
name = "anthropic"
kind = "anthropic"
api_key = "env:INTERLOCK_TEST_UNSET_KEY"
models = ["claude-opus-4-6"]

[plugins.cost_router]
enabled = false
strategy = "latency"
tiers = [ { below = 0.3, model = "gpt-4o-mini" },
          { below = 0.7, model = "gpt-4o" },
          { below = 1.01, model = "claude-opus-4-6" } ]
features = { "support-bot" = "gpt-4o-mini" }
tenants = { acme = { tiers = [ { below = 1.01, model = "gpt-4o" } ] } }
"""


def explain(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: object, *extra: str) -> str:
    path = tmp_path / "plugins.toml"
    path.write_text(CONFIG)
    code = main(["route", "--config", str(path), "--explain", json.dumps(body), *extra])
    out = capsys.readouterr().out
    assert code == 0
    return out


def rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line.strip()}


def test_explain_prints_every_contribution_and_the_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "model": "auto",
        "max_tokens": 16384,
        "messages": [{"role": "user", "content": "Why? Prove it step by step.\n```py\nx = 1\n```"}],
    }
    out = explain(tmp_path, capsys, body)
    table = rows(out)
    assert out.splitlines()[0].startswith("note: [plugins.cost_router] is not enabled")
    assert table["reasoning"].split()[-3:] == ["1.00", "0.75", "0.750"]
    assert "step by step" in table["reasoning"] and "why?" in table["reasoning"]
    assert table["code"].split()[-3:] == ["0.90", "0.40", "0.360"]
    assert table["max_tokens"].split()[-3:] == ["1.00", "0.15", "0.150"]
    assert table["tools"].split()[-1] == "0.000"
    assert table["score"].split()[1:] == ["1.000", "(capped", "at", "1)"]
    assert "claude-opus-4-6 (tier<1.01 score=1.00)" in table["decision"]
    assert "anthropic/claude-opus-4-6 (strategy: latency)" in table["deployments"]


def test_explain_applies_tenant_and_feature_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hi = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    assert "gpt-4o-mini (tier<0.3 score=0.00)" in explain(tmp_path, capsys, hi)
    tenant = rows(explain(tmp_path, capsys, hi, "--tenant", "acme"))
    assert "gpt-4o (tier<1.01 score=0.00)" in tenant["decision"]
    assert "openai/gpt-4o, azure/gpt-4o" in tenant["deployments"]
    feature = rows(explain(tmp_path, capsys, {**hi, "model": "gpt-4o"}, "--feature", "support-bot"))
    assert "gpt-4o-mini (feature=support-bot)" in feature["decision"]
    asked = rows(explain(tmp_path, capsys, {**hi, "model": "gpt-4o"}))
    assert "gpt-4o (requested" in asked["decision"]


def test_explain_refuses_what_is_not_a_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plugins.toml"
    path.write_text(CONFIG)
    assert main(["route", "--config", str(path), "--explain", "{not json"]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main(["route", "--config", str(path), "--explain", "[1, 2]"]) == 2
    assert "JSON object" in capsys.readouterr().err
