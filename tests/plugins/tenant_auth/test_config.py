"""tenant_auth's table: shipped off in the default plugins.toml (and valid when turned
on), typos refused at start-up, the master key read from the environment and known to
the log redactor, `serve --demo`'s switch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from interlock.core.app import create_app
from interlock.core.cli import main
from interlock.core.config import ConfigError, load_config
from tests.plugins.tenant_auth.conftest import admin_headers, gateway_toml, http
from tests.support import FakeUpstream, gateway_config, serve_asgi

ROOT = Path(__file__).resolve().parents[3]


def test_the_default_config_ships_it_off_and_valid_when_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "examples" / "length_router.py", tmp_path / "length_router.py")
    text = (ROOT / "plugins.toml").read_text().replace("./examples/", "./")
    [entry] = [e for e in load_config(_write(tmp_path, text)).plugins if e.name == "tenant_auth"]
    assert entry.enabled is False and entry.settings["master_key"] == "env:INTERLOCK_MASTER_KEY"
    on = text.replace(
        "[plugins.tenant_auth]\nenabled = false", "[plugins.tenant_auth]\nenabled = true"
    )
    assert on != text
    assert main(["check-config", str(_write(tmp_path, on))]) == 0
    assert "plugins: tenant_auth" in capsys.readouterr().out


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(text)
    return path


def test_a_typo_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    config = gateway_config(
        gateway_toml("sqlite://", "http://127.0.0.1:9", "cache_ttl = 1"), tmp_path
    )
    with pytest.raises(ConfigError, match=r"\[plugins.tenant_auth\] key `cache_ttl`: unknown key"):
        create_app(config)


def test_demo_switches_it_on_whatever_the_file_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "[plugins.tenant_auth]\nenabled = false\n")
    monkeypatch.setenv("INTERLOCK_DEMO", "1")
    assert [(e.name, e.enabled) for e in load_config(path).plugins] == [("tenant_auth", True)]
    empty = _write(tmp_path, "[plugins.other]\nenabled = false\n")
    assert [(e.name, e.enabled) for e in load_config(empty).plugins] == [
        ("tenant_auth", True),
        ("other", False),
    ]
    monkeypatch.delenv("INTERLOCK_DEMO")
    assert [(e.name, e.enabled) for e in load_config(empty).plugins] == [("other", False)]


async def test_the_master_key_comes_from_the_environment(
    upstream: tuple[FakeUpstream, str],
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = upstream
    monkeypatch.setenv("INTERLOCK_MASTER_KEY", "mk-from-the-environment-0042")
    toml = gateway_toml(store_url, url, master="env:INTERLOCK_MASTER_KEY")
    app = create_app(gateway_config(toml, tmp_path))
    async with serve_asgi(app) as gw, http() as client:
        ok = await client.get(
            f"{gw}/admin/tenants", headers=admin_headers("mk-from-the-environment-0042")
        )
        literal = await client.get(
            f"{gw}/admin/tenants", headers=admin_headers("env:INTERLOCK_MASTER_KEY")
        )
        redacted = "mk-from-the-environment-0042" in app.state.gateway.redactor.secrets
    assert ok.status_code == 200 and literal.status_code == 401
    assert redacted
