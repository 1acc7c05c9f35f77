"""Loading plugins: the contracts refused at start-up, each naming the plugin, so a
mistake is one clear line (`check-config` finds it too) instead of a plugin that
silently does nothing."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from interlock.core.app import create_app
from interlock.core.cli import main
from interlock.core.config import ConfigError
from tests.support import gateway_config, local_plugin

MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["m"]\n'


def check_config(tmp_path: Path, toml: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run `interlock check-config` on `toml`; returns its error line (it must fail)."""
    path = tmp_path / "plugins.toml"
    path.write_text(MOCK + f'[store]\nurl = "sqlite:///{tmp_path}/x.db"\n' + toml)
    assert main(["check-config", str(path)]) == 2
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("hook", "body"),
    [
        ("route", "@hookimpl\nasync def route(self, ctx):\n    return None\n"),
        (
            "route",
            "@hookimpl\nasync def route(self, ctx):\n    yield None\n",  # an async generator
        ),
        ("wrap_stream", "@hookimpl\nasync def wrap_stream(self, ctx, stream):\n    return None\n"),
    ],
    ids=["async-route", "async-generator-route", "async-wrap-stream"],
)
def test_an_async_route_or_wrap_stream_is_refused_naming_the_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hook: str, body: str
) -> None:
    error = check_config(tmp_path, local_plugin(tmp_path, "asyncish", body), capsys)
    assert "[plugins.asyncish]" in error
    assert f"`{hook}` must be a plain `def`" in error


def test_a_class_named_unlike_its_table_is_refused_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = tmp_path / "renamed.py"
    plugin.write_text(
        "from interlock.core import Plugin, hookimpl\n"
        "class Renamed(Plugin):\n    name = 'old_name'\n"
        "    @hookimpl\n    def pre_auth(self, ctx):\n        pass\n"
    )
    error = check_config(tmp_path, f'[plugins.new_name]\npath = "{plugin}"\n', capsys)
    assert "[plugins.new_name]" in error
    assert "is named 'old_name', not 'new_name'" in error


def test_an_entry_point_class_named_unlike_its_table_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "misnamed_plugin").mkdir(parents=True)
    (site / "misnamed_plugin" / "__init__.py").write_text(
        textwrap.dedent("""
        from interlock.core import Plugin
        class Misnamed(Plugin):
            name = "something_else"
    """)
    )
    dist = site / "misnamed_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: misnamed-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[interlock.plugins]\nmisnamed = misnamed_plugin:Misnamed\n"
    )
    monkeypatch.syspath_prepend(str(site))
    try:
        with pytest.raises(ConfigError) as caught:
            create_app(gateway_config("[plugins.misnamed]\n", tmp_path))
    finally:
        sys.modules.pop("misnamed_plugin", None)
    assert "[plugins.misnamed]" in str(caught.value)
    assert "misnamed_plugin.Misnamed is named 'something_else', not 'misnamed'" in str(caught.value)


def test_a_file_that_only_imports_plugin_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to load the imported base class, a plugin with no hooks that did nothing."""
    plugin = tmp_path / "empty.py"
    plugin.write_text("from interlock.core import Plugin, hookimpl\n")
    error = check_config(tmp_path, f'[plugins.empty]\npath = "{plugin}"\n', capsys)
    assert "[plugins.empty]" in error
    assert 'must define one class with name = "empty"' in error


def test_a_plugin_failing_in_its_constructor_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = "def __init__(self, config, services):\n    raise RuntimeError('no licence')\n"
    error = check_config(tmp_path, local_plugin(tmp_path, "fragile", body), capsys)
    assert "[plugins.fragile]: plugin failed to start: no licence" in error


async def test_a_startup_failure_stops_start_up_naming_the_plugin(tmp_path: Path) -> None:
    body = """
    @hookimpl
    async def startup(self, services):
        raise RuntimeError("cannot reach the licence server")
    """
    toml = MOCK + local_plugin(tmp_path, "fine", "") + local_plugin(tmp_path, "licensed", body)
    gateway = create_app(gateway_config(toml, tmp_path)).state.gateway
    with pytest.raises(ConfigError) as caught:
        await gateway.start()
    assert "[plugins.licensed]: startup failed: cannot reach the licence server" in str(
        caught.value
    )
    assert gateway.services is None  # what start() had opened is closed again
    gateway.log_setup.close()
