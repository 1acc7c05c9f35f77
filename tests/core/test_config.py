"""plugins.toml: every mistake stops start-up with one line naming file, table and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from interlock.core.app import create_app
from interlock.core.cli import main
from interlock.core.config import ConfigError, default_config, literal_secrets, load_config

MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(text)
    return path


def build(tmp_path: Path, text: str) -> None:
    create_app(load_config(write(tmp_path, text)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = 'x'\n", "[server] key `port`: Expected int, got str"),
        ("[server]\nprot = 1\n", "[server] key `prot`: unknown key"),
        ("[nonsense]\na = 1\n", "[nonsense]: unknown table"),
        (MOCK + "[plugins.does_not_exist]\n", "[plugins.does_not_exist]: unknown plugin"),
        ('[[providers]]\nname = "a"\n', "key `kind`: missing required key"),
        ('[[providers]]\nname = "a"\nkind = "telepathy"\n', "key `kind`: unknown kind 'telepathy'"),
        (MOCK + "latency_msec = 3\n", "[providers 'mock'] key `latency_msec`: unknown key"),
        (MOCK + MOCK, "'mock' is used twice"),
        (
            '[[providers]]\nname = "o"\nkind = "openai"\nbase_url = "ftp://x"\napi_key = "k"\n',
            "must be http:// or https://",
        ),
        ("[logging]\nlevel = 'loud'\n", "[logging] key `level`"),
        ("[server]\nshutdown_timeout_s = -1\n", "[server] key `shutdown_timeout_s`: must not be"),
        ("[server]\ngraceful_timeout = 5\n", "[server] key `graceful_timeout`: unknown key"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_config_errors_name_file_table_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, text)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "plugins.toml"))
    assert expected in message
    assert "\n" not in message


def test_plugin_settings_are_checked_by_the_plugins_config(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "length_router.py"
    text = (
        MOCK
        + f'[plugins.length_router]\npath = "{example}"\nsmall = "a"\nlarge = "b"\nthreshold = 3\n'
    )
    with pytest.raises(
        ConfigError, match=r"\[plugins.length_router\] key `threshold`: unknown key"
    ):
        build(tmp_path, text)
    text = MOCK + f'[plugins.length_router]\npath = "{example}"\nsmall = 1\nlarge = "b"\n'
    with pytest.raises(
        ConfigError, match=r"\[plugins.length_router\] key `small`: Expected str, got int"
    ):
        build(tmp_path, text)


def test_secrets_are_env_references_and_unset_keys_skip_the_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTERLOCK_TEST_KEY", raising=False)
    text = (
        '[[providers]]\nname = "o"\nkind = "openai"\napi_key = "env:INTERLOCK_TEST_KEY"\nmodels = ["gpt-4o"]\n'
        + MOCK
        + f'[store]\nurl = "sqlite:///{tmp_path}/x.db"\n'
    )
    app = create_app(load_config(write(tmp_path, text)))
    assert list(app.state.gateway.providers) == ["mock"]
    monkeypatch.setenv("INTERLOCK_TEST_KEY", "sk-canary-123456")
    app = create_app(load_config(write(tmp_path, text)))
    provider = app.state.gateway.providers["o"]
    assert provider.api_key.reveal() == "sk-canary-123456"
    assert "sk-canary" not in repr(provider.api_key)


def test_config_path_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[server]\nport = 4321\n")
    monkeypatch.setenv("INTERLOCK_CONFIG", str(path))
    assert load_config().server.port == 4321


def test_no_file_at_all_serves_the_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INTERLOCK_CONFIG", raising=False)
    config = load_config()
    assert config.providers[0].kind == "mock" and config.providers[0].models == ["*"]
    assert config == default_config()


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, MOCK + f'[store]\nurl = "sqlite:///{tmp_path}/x.db"\n')
    assert main(["check-config", str(good)]) == 0
    assert "ok; providers: mock" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'x'\n")
    assert main(["check-config", str(bad)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"interlock: {bad}: [server] key `port`: Expected int, got str"
    )


def test_repository_plugins_toml_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "interlock.core.cli", "check-config", str(root / "plugins.toml")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


CANARY = "sk-live-canary-0123456789"
LITERAL = f"""
[[providers]]
name = "openai"
kind = "openai"
api_key = "{CANARY}"
models = ["gpt-4o"]

[[providers]]
name = "claude"
kind = "anthropic"
api_key = "env:INTERLOCK_TEST_ANTHROPIC"
models = ["claude-sonnet-4-6"]
"""


def test_literal_secrets_are_found_by_table_and_key(tmp_path: Path) -> None:
    text = (
        LITERAL
        + """
[plugins.auth]
master_key = "mk-canary"
signing_key = "env:SIGNING"
budget_key = ""
key = "tenant"
header = "x-api-key"

[plugins.auth.upstream]
service_key = "svc-canary"

[[plugins.auth.static]]
api_key = "vk-canary-1"

[[plugins.auth.static]]
api_key = "env:VK_2"

[plugins.redaction.actions]
api_key = "redact"
aws_key = "tokenize"
private_key = "block"
"""
    )
    config = load_config(write(tmp_path, text))
    assert literal_secrets(config) == [
        "[plugins.auth.static] key `api_key`",
        "[plugins.auth.upstream] key `service_key`",
        "[plugins.auth] key `master_key`",
        "[providers 'openai'] key `api_key`",
    ]
    assert literal_secrets(load_config(write(tmp_path, MOCK))) == []
    # The repository's own plugins.toml (every plugin's settings) holds no literal secret.
    assert literal_secrets(load_config(Path(__file__).resolve().parents[2] / "plugins.toml")) == []


def test_check_config_warns_about_literal_secrets_without_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, LITERAL + f'[store]\nurl = "sqlite:///{tmp_path}/x.db"\n')
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "ok; providers: openai" in out
    assert err.splitlines() == [
        f"interlock: warning: {path}: [providers 'openai'] key `api_key`: a literal secret; "
        "write env:NAME and set the variable NAME instead"
    ]
    assert CANARY not in out + err


async def test_serve_warns_about_literal_secrets_at_start_up(tmp_path: Path) -> None:
    """The warning is one of the operator's lines on stderr, before the server runs
    (JSON, as every line `serve` prints with the default log format)."""
    import asyncio
    import os
    import signal

    from tests.core.test_cli import RUNNING
    from tests.support import GUARD

    path = write(tmp_path, LITERAL + f'[store]\nurl = "sqlite:///{tmp_path}/x.db"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlock.core.cli",
        "serve",
        "--config",
        str(path),
        "--port",
        "0",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stderr is not None
    before: list[bytes] = []
    while not before or not RUNNING.search(before[-1]):
        line = await asyncio.wait_for(proc.stderr.readline(), GUARD)
        assert line, b"".join(before).decode()
        before.append(line)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), GUARD)
    lines = [msgspec.json.decode(line) for line in before if line.startswith(b"{")]
    [warning] = [line for line in lines if line["event"] == "literal_secret"]
    assert warning["level"] == "warning"
    assert warning["where"] == "[providers 'openai'] key `api_key`"
    assert CANARY.encode() not in b"".join(before) + stdout + stderr
