"""Circuit breakers in the running gateway: a provider that is down stops getting
traffic once its circuit opens and gets it back after the cool-down (one probe first);
when every circuit is open the request fails fast with a Retry-After; the states are at
`GET /admin/circuits` (master key) and in the log when they change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog

from tests.plugins.routing import FakeClock, answer, gateway, ok, provider, recorder, served
from tests.support import GUARD, Recorded, Reply

FAIL_500 = Reply.json({"error": {"message": "boom"}}, 500)
MASTER = "mk-test-master-key-0123456789"

BREAKER = """
[plugins.failover]
retries = 0
failure_threshold = 2
error_rate = 0.0
cooldown_s = 30
"""


def pair(url: str) -> str:
    return provider("primary", url, ["gpt-4o"]) + provider("secondary", url, ["gpt-4o"])


class Switch:
    """A provider that is down until told otherwise."""

    def __init__(self) -> None:
        self.down = True

    def __call__(self, rec: Recorded) -> Reply:
        return FAIL_500 if self.down else ok(rec)


async def test_a_down_primary_stops_getting_traffic_and_gets_it_back_after_the_cool_down(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    primary = Switch()
    answer(fake, "primary", primary)
    answer(fake, "secondary")
    async with gateway(pair(url) + BREAKER + recorder(), tmp_path) as gw:
        clock = gw.plugin("failover").circuits.clock = FakeClock()
        with structlog.testing.capture_logs() as logs:
            statuses = [(await gw.chat(model="gpt-4o")).status_code for _ in range(4)]
            assert served(fake) == [
                "primary/gpt-4o",
                "secondary/gpt-4o",
                "primary/gpt-4o",  # the second failure in a row opens the circuit
                "secondary/gpt-4o",
                "secondary/gpt-4o",  # the primary is skipped: no attempt, no wait
                "secondary/gpt-4o",
            ]
            assert gw.records[3]["reason"] == "default; circuit open: primary/gpt-4o"
            assert gw.records[3]["attempts"] == [("secondary", "gpt-4o", 200, None, None)]
            clock.advance(29.9)
            await gw.chat(model="gpt-4o")
            assert served(fake)[-1] == "secondary/gpt-4o"  # still cooling down
            primary.down = False
            clock.advance(0.1)
            back = await gw.chat(model="gpt-4o")  # half-open: this one probes, and succeeds
            await gw.chat(model="gpt-4o")
    assert statuses == [200] * 4
    assert back.headers["x-interlock-route"] == "primary/gpt-4o"
    assert served(fake)[-2:] == ["primary/gpt-4o", "primary/gpt-4o"]
    changes = [(e["event"], e["provider"]) for e in logs if e["event"].startswith("circuit_")]
    assert changes == [
        ("circuit_opened", "primary"),
        ("circuit_half_open", "primary"),
        ("circuit_closed", "primary"),
    ]
    opened = next(e for e in logs if e["event"] == "circuit_opened")
    assert (opened["model"], opened["consecutive_failures"], opened["log_level"]) == (
        "gpt-4o",
        2,
        "warning",
    )


async def test_when_every_circuit_is_open_the_request_fails_fast_with_retry_after(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    answer(fake, "primary", lambda r: FAIL_500)
    answer(fake, "secondary", lambda r: FAIL_500)
    toml = pair(url) + BREAKER.replace("failure_threshold = 2", "failure_threshold = 1")
    async with gateway(toml, tmp_path) as gw:
        clock = gw.plugin("failover").circuits.clock = FakeClock()
        first = await gw.chat(model="gpt-4o")
        assert first.status_code == 502
        tried = len(fake.requests)
        clock.advance(10.5)
        openai = await gw.chat(model="gpt-4o")
        anthropic = await gw.messages(model="gpt-4o")
    assert tried == len(fake.requests) == 2  # nothing was sent while the circuits were open
    assert openai.status_code == anthropic.status_code == 503
    assert openai.headers["retry-after"] == anthropic.headers["retry-after"] == "20"
    assert openai.json()["error"]["type"] == "circuit_open"
    assert anthropic.json()["error"]["type"] == "overloaded_error"
    assert anthropic.headers["x-interlock-route-reason"] == (
        "default; circuit open: primary/gpt-4o, secondary/gpt-4o"
    )


async def test_a_half_open_circuit_lets_a_single_probe_through(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    release = asyncio.Event()
    probing = asyncio.Event()
    down = [True]

    async def primary(rec: Recorded) -> Reply:
        if down[0]:
            return FAIL_500
        probing.set()
        await release.wait()
        return ok(rec)

    answer(fake, "primary", primary)
    toml = provider("primary", url, ["gpt-4o"]) + BREAKER.replace(
        "failure_threshold = 2", "failure_threshold = 1"
    )
    async with gateway(toml, tmp_path) as gw:
        clock = gw.plugin("failover").circuits.clock = FakeClock()
        assert (await gw.chat(model="gpt-4o")).status_code == 502  # opens
        clock.advance(30)
        down[0] = False
        probe = asyncio.ensure_future(gw.chat(model="gpt-4o"))
        await asyncio.wait_for(probing.wait(), GUARD)
        other = await gw.chat(model="gpt-4o")  # the probe is taken: refused at once
        release.set()
        assert (await probe).status_code == 200
        after = await gw.chat(model="gpt-4o")  # closed again
    assert other.status_code == 503
    assert other.headers["retry-after"] == "1"
    assert after.status_code == 200
    assert len(fake.requests) == 3


async def test_a_probe_that_was_never_tried_is_given_back(upstream, tmp_path: Path) -> None:
    """A half-open candidate behind a healthy one is not probed by requests the healthy
    one answers, and each such request returns the probe for the next."""
    fake, url = upstream
    answer(fake, "primary")
    answer(fake, "secondary", lambda r: FAIL_500)
    toml = (
        provider("primary", url, ["gpt-4o"])
        + provider("secondary", url, ["gpt-4o"])
        + (BREAKER.replace("failure_threshold = 2", "failure_threshold = 1"))
        + recorder()
    )
    async with gateway(toml, tmp_path) as gw:
        plugin = gw.plugin("failover")
        clock = plugin.circuits.clock = FakeClock()
        # Open the secondary's circuit directly: one failure of its own.
        await plugin.circuits.learn("secondary", "gpt-4o", False, None)
        clock.advance(31)
        for _ in range(3):
            assert (await gw.chat(model="gpt-4o")).status_code == 200
    # Every request could take the probe, because the previous one gave it back.
    assert [r["candidates"] for r in gw.records] == [["primary/gpt-4o", "secondary/gpt-4o"]] * 3
    assert served(fake) == ["primary/gpt-4o"] * 3


# -- the admin route -----------------------------------------------------------------------------
async def test_admin_circuits_needs_the_master_key(
    upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = upstream
    answer(fake, "primary", lambda r: FAIL_500)
    answer(fake, "secondary")
    monkeypatch.setenv("INTERLOCK_TEST_MASTER", MASTER)
    toml = pair(url) + BREAKER + 'master_key = "env:INTERLOCK_TEST_MASTER"\n'
    async with gateway(toml, tmp_path) as gw:
        gw.plugin("failover").circuits.clock = FakeClock()
        for _ in range(2):
            await gw.chat(model="gpt-4o")
        admin = f"{gw.url}/admin/circuits"
        anonymous = await gw.client.get(admin)
        wrong = await gw.client.get(admin, headers={"authorization": "Bearer not-the-key"})
        bearer = await gw.client.get(admin, headers={"authorization": f"Bearer {MASTER}"})
        api_key = await gw.client.get(admin, headers={"x-api-key": MASTER})
    assert anonymous.status_code == wrong.status_code == 401
    assert MASTER not in wrong.text
    assert bearer.status_code == api_key.status_code == 200
    circuits = {(c["provider"], c["model"]): c for c in bearer.json()["circuits"]}
    assert circuits[("primary", "gpt-4o")] == {
        "provider": "primary",
        "model": "gpt-4o",
        "state": "open",
        "retry_after_s": 30.0,
        "consecutive_failures": 0,
        "window_errors": 0,
        "window_total": 0,
    }
    assert circuits[("secondary", "gpt-4o")]["state"] == "closed"


async def test_admin_circuits_is_refused_without_a_configured_master_key(
    upstream, tmp_path: Path
) -> None:
    _, url = upstream
    async with gateway(pair(url) + BREAKER, tmp_path) as gw:
        resp = await gw.client.get(
            f"{gw.url}/admin/circuits", headers={"authorization": "Bearer anything"}
        )
    assert resp.status_code == 403
    assert resp.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('master_key = "mk-literal-key"', "key `master_key`: must be an env:NAME reference"),
        ("retries = -1", "key `retries`: -1 is out of range"),
        ("error_rate = 1.5", "key `error_rate`: 1.5 is out of range"),
        ("cooldown_s = 0", "key `cooldown_s`: 0.0 is out of range"),
        ("chian = []", "key `chian`: unknown key"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, message: str
) -> None:
    from interlock.core.cli import main

    path = tmp_path / "plugins.toml"
    path.write_text(f'[store]\nurl = "sqlite://"\n\n[plugins.failover]\n{setting}\n')
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "mk-literal-key" not in err
