"""`interlock serve` on an address beyond this machine with no auth plugin warns at
start-up, and says how to turn tenant_auth on; loopback, or any plugin on `pre_auth`,
keeps it quiet."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest

from interlock.core.cli import _warn_if_open
from interlock.core.plugins import find_plugin_classes
from tests.support import gateway_config


def _warning(capsys: pytest.CaptureFixture[str], toml: str, tmp_path: Path) -> str:
    config = gateway_config(toml, tmp_path)
    _warn_if_open(config, SimpleNamespace(plugin_classes=find_plugin_classes(config)))
    return capsys.readouterr().err


def _plugin(tmp_path: Path, hook: str) -> str:
    path = tmp_path / f"p_{hook}.py"
    path.write_text(
        "from interlock.core import Plugin, hookimpl\n\n"
        f"class P(Plugin):\n    name = 'p_{hook}'\n\n"
        f"    @hookimpl\n    def {hook}(self, ctx):\n        return None\n"
    )
    return f'\n[plugins.p_{hook}]\npath = "{path}"\n'


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "gateway.example"])
def test_an_open_address_without_auth_warns_how_to_enable_it(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _warning(
        capsys, f'[server]\nhost = "{host}"\n' + _plugin(tmp_path, "pre_forward"), tmp_path
    )
    line = msgspec.json.decode(err)  # the default log format is JSON: so is this line
    assert line["event"] == "no_auth_plugin" and line["level"] == "warning"
    assert "WARNING" in line["message"] and host in line["message"]
    assert "[plugins.tenant_auth]" in line["message"] and "enabled = true" in line["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_is_quiet(host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _warning(capsys, f'[server]\nhost = "{host}"\n', tmp_path) == ""


def test_an_auth_plugin_is_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = '[server]\nhost = "0.0.0.0"\n'
    assert _warning(capsys, toml + _plugin(tmp_path, "pre_auth"), tmp_path) == ""
    assert _warning(capsys, toml + "\n[plugins.tenant_auth]\n", tmp_path) == ""
