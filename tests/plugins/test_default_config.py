"""The default plugins.toml carries every built-in plugin's table with its settings
(disabled); switched on as it is, each one starts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from interlock.core.app import create_app
from interlock.core.config import parse_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["pii_redaction", "audit"])
async def test_the_default_table_starts_when_enabled(tmp_path: Path, name: str) -> None:
    doc = tomllib.loads((ROOT / "plugins.toml").read_text())
    table = doc["plugins"][name]
    assert table["enabled"] is False
    table["enabled"] = True
    doc["store"] = {"url": f"sqlite:///{tmp_path / 'interlock.db'}"}
    gateway = create_app(parse_config(doc, source="plugins.toml", base_dir=str(ROOT))).state.gateway
    try:
        await gateway.start()
        (plugin,) = [p for p in gateway.plugins if p.name == name]
        assert plugin.config.__struct_fields__  # its settings were read into its Config
    finally:
        await gateway.close(hooks=True)
        gateway.log_setup.close()
