"""`interlock tenants ...` and `interlock keys ...` on the store plugins.toml names, on
both stores, and `interlock serve --demo`: the CLI and the admin API see the same
tenants and keys, and a key printed by the CLI works on a gateway."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import msgspec
import pytest

from interlock.core.cli import main
from tests.plugins.tenant_auth.conftest import admin, chat, gateway_toml, http
from tests.support import GUARD, FakeUpstream, run_gateway


def write_config(tmp_path: Path, store_url: str, upstream: str = "http://127.0.0.1:9") -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(gateway_toml(store_url, upstream))
    return path


async def cli(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    """`interlock ARGS --config F` in a thread (it runs its own event loop)."""
    status = await asyncio.to_thread(main, [*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return status, out, err


async def test_cli_and_admin_api_see_the_same_tenants_and_keys(
    upstream: tuple[FakeUpstream, str],
    store_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = upstream
    config = write_config(tmp_path, store_url, url)
    status, _, err = await cli(
        capsys, config, "tenants", "create", "acme", "--budget", "25", "--rpm", "60",
        "--tpm", "1000", "--models", "gpt-4o, gpt-4o-mini",
        "--provider-key", "up=env:ACME_UP",
    )  # fmt: skip
    assert status == 0, err
    status, key, err = await cli(capsys, config, "keys", "create", "--tenant", "acme")
    assert status == 0 and "shown once" in err
    key = key.strip()
    assert re.fullmatch(r"ik-[A-Za-z0-9_-]{43}", key)
    async with run_gateway(config.read_text(), tmp_path) as gw, http() as client:
        await admin(client, gw, "POST", "/admin/tenants", {"name": "beta", "models": ["gpt-4o"]})
        api_key = (await admin(client, gw, "POST", "/admin/keys", {"tenant": "beta"})).json()
        api_tenants = (await admin(client, gw, "GET", "/admin/tenants")).json()["data"]
        api_keys = (await admin(client, gw, "GET", "/admin/keys")).json()["data"]
    capsys.readouterr()  # the gateway's log lines
    listed = await cli(capsys, config, "tenants", "list", "--json")
    keys_listed = await cli(capsys, config, "keys", "list", "--json")
    table = await cli(capsys, config, "tenants", "list")
    key_table = await cli(capsys, config, "keys", "list", "--tenant", "acme")
    cli_tenants = [msgspec.json.decode(line) for line in listed[1].splitlines()]
    cli_keys = [msgspec.json.decode(line) for line in keys_listed[1].splitlines()]
    assert cli_tenants == api_tenants
    assert cli_keys == api_keys
    acme = next(t for t in api_tenants if t["name"] == "acme")
    assert (acme["monthly_budget_usd"], acme["rpm"], acme["tpm"], acme["models"]) == (
        25.0,
        60,
        1000,
        ["gpt-4o", "gpt-4o-mini"],
    )
    assert acme["provider_keys"] == {"up": "env:ACME_UP"}
    assert [line.split()[0] for line in table[1].splitlines()] == ["NAME", "acme", "beta"]
    rows = key_table[1].splitlines()
    assert rows[0].split() == ["ID", "PREFIX", "TENANT", "STATUS", "EXPIRES", "NAME"]
    assert len(rows) == 2 and rows[1].split()[1] == key[:11] + "..." and "active" in rows[1]
    for output in (listed[1], keys_listed[1], table[1], key_table[1]):
        assert key not in output and api_key["key"] not in output


async def test_a_key_from_the_cli_works_until_the_cli_revokes_it(
    upstream: tuple[FakeUpstream, str],
    store_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, url = upstream
    from tests.core.test_proxy_openai import COMPLETION
    from tests.support import Reply

    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    config = write_config(tmp_path, store_url, url)
    config.write_text(config.read_text() + "cache_ttl_s = 0\nnegative_cache_ttl_s = 0\n")
    await cli(capsys, config, "tenants", "create", "acme")
    _, key, _ = await cli(
        capsys, config, "keys", "create", "--tenant", "acme", "--expires", "2999-12-31"
    )
    key = key.strip()
    _, out, _ = await cli(capsys, config, "keys", "list", "--json")
    [info] = [msgspec.json.decode(line) for line in out.splitlines()]
    assert info["expires_at"] == "2999-12-31T00:00:00Z"
    async with run_gateway(config.read_text(), tmp_path) as gw, http() as client:
        auth = {"authorization": f"Bearer {key}"}
        before = await client.post(f"{gw}/v1/chat/completions", json=chat(), headers=auth)
        status = await asyncio.to_thread(
            main, ["keys", "revoke", info["id"], "--config", str(config)]
        )
        after = await client.post(f"{gw}/v1/chat/completions", json=chat(), headers=auth)
    assert before.status_code == 200
    assert status == 0 and f"key {info['id']} revoked" in capsys.readouterr().err
    assert after.status_code == 401  # TTL 0: the next request asks the store


REFUSED = [
    (["tenants", "create", "bad name"], "NAME:"),
    (["tenants", "create", "x", "--rpm", "0"], "--rpm:"),
    (["tenants", "create", "x", "--budget", "-3"], "--budget:"),
    (["tenants", "create", "x", "--provider-key", "up=sk-literal"], "--provider-key:"),
    (["tenants", "create", "x", "--provider-key", "up"], "--provider-key:"),
    (["keys", "create", "--tenant", "nobody"], "--tenant:"),
    (["keys", "create", "--tenant", "acme", "--expires", "2001-01-01"], "--expires:"),
    (["keys", "create", "--tenant", "acme", "--expires", "tomorrow"], "--expires:"),
    (["keys", "revoke", "key_0000000000000000"], "no key"),
    (["keys", "revoke", "' OR '1'='1"], "no key"),
    (["keys", "list", "--tenant", "x'; DROP TABLE tenants; --"], "no tenant"),
    (["tenants", "create", "acme"], "already exists"),
    (["tenants", "delete", "nobody"], "no tenant"),
]


async def test_cli_refusals_name_the_flag(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, store_url)
    assert (await cli(capsys, config, "tenants", "create", "acme"))[0] == 0
    for args, message in REFUSED:
        status, out, err = await cli(capsys, config, *args)
        assert status == 1, args
        assert err.startswith("interlock: ") and message in err, (args, err)
        assert out == "", args
    _, listed, _ = await cli(capsys, config, "tenants", "list", "--json")
    assert [msgspec.json.decode(line)["name"] for line in listed.splitlines()] == ["acme"]


async def test_tenants_delete_takes_its_keys(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, store_url)
    await cli(capsys, config, "tenants", "create", "acme")
    await cli(capsys, config, "keys", "create", "--tenant", "acme")
    assert (await cli(capsys, config, "tenants", "delete", "acme"))[0] == 0
    assert (await cli(capsys, config, "keys", "list", "--json"))[1] == ""


async def _run(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock.core.cli", *args,
        cwd=cwd, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), GUARD)
    return proc.returncode or 0, out, err


async def test_the_interlock_command_has_the_subcommands(tmp_path: Path) -> None:
    """The real entry point: the commands come from the `interlock.commands` group."""
    env = {"INTERLOCK_CONFIG": ""}
    status, _, err = await _run("tenants", "create", "acme", cwd=tmp_path, env=env)
    assert status == 0, err
    status, out, _ = await _run("tenants", "list", cwd=tmp_path, env=env)
    header = [b"NAME", b"BUDGET_USD", b"RPM", b"TPM", b"MODELS", b"PROVIDER_KEYS"]
    assert out.split() == [*header, b"acme", b"-", b"-", b"-", b"all", b"-"]
    assert (tmp_path / "interlock.db").is_file()  # the default store, as `serve` uses it


SERVING = re.compile(rb"serving on (http://127\.0\.0\.1:\d+)")
DEMO_KEY = re.compile(rb"shown once: (ik-[A-Za-z0-9_-]{43})")


async def _serve_demo(tmp_path: Path, log_format: str) -> tuple[str, bytes]:
    """Run `interlock serve --demo` until it answers; return the key it printed (or "")
    and its stderr up to the banner, and stop it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock.core.cli", "serve", "--demo", "--port", "0",
        "--log-format", log_format,
        cwd=tmp_path, env={**os.environ, "INTERLOCK_CONFIG": ""},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    url = None
    seen = b""
    while url is None:
        line = await asyncio.wait_for(proc.stderr.readline(), GUARD)
        assert line, f"server exited: {seen.decode()}"
        seen += line
        if found := SERVING.search(line):
            url = found.group(1).decode()
    found_key = DEMO_KEY.search(seen)
    key = found_key.group(1).decode() if found_key else ""
    try:
        async with http() as client:
            anonymous = await client.post(f"{url}/v1/chat/completions", json=chat())
            assert anonymous.status_code == 401
            if key:
                auth = {"authorization": f"Bearer {key}"}
                served = await client.post(f"{url}/v1/chat/completions", json=chat(), headers=auth)
                assert served.status_code == 200  # on the built-in mock
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), GUARD)
    return key, seen


async def test_serve_demo_makes_a_tenant_and_key_on_the_first_start_only(tmp_path: Path) -> None:
    key, first = await _serve_demo(tmp_path, "json")
    assert re.fullmatch(r"ik-[A-Za-z0-9_-]{43}", key)
    lines = [msgspec.json.decode(line) for line in first.splitlines()]  # every line is JSON
    [demo] = [line for line in lines if line["event"] == "demo_key"]
    assert demo["tenant"] == "demo" and demo["level"] == "warning"
    again, second = await _serve_demo(tmp_path, "console")
    assert again == "" and b"interlock: demo: tenant 'demo' exists" in second
