"""`interlock serve` and `interlock mock-upstream` as real processes on OS-chosen ports."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import platform
import re
import signal
import sys
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from interlock.core import version
from interlock.core.cli import main
from tests.support import GUARD

RUNNING = re.compile(rb"Running on (http://127\.0\.0\.1:\d+)")


@contextlib.asynccontextmanager
async def interlock(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """Start `interlock ARGS --port 0`; yields its URL (read from the server's own log)
    and, after it stopped, what it printed on stdout."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlock.core.cli",
        *args,
        "--port",
        "0",
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None and proc.stdout is not None
    url = None
    seen = b""
    while url is None:
        line = await asyncio.wait_for(proc.stderr.readline(), GUARD)
        assert line, f"server exited: {seen.decode()}"
        seen += line
        if found := RUNNING.search(line):
            url = found.group(1).decode()
    out: list[bytes] = []
    try:
        yield url, out
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, _ = await asyncio.wait_for(proc.communicate(), GUARD)
        out.extend(stdout.splitlines())


async def test_serve_with_no_config_answers_on_the_mock(tmp_path: Path) -> None:
    env = {"INTERLOCK_CONFIG": ""}
    async with interlock("serve", cwd=tmp_path, env=env) as (url, out):
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{url}/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert resp.status_code == 200
            assert resp.json()["choices"][0]["message"]["content"]
            assert (await client.get(f"{url}/readyz")).status_code == 200
    lines = [msgspec.json.decode(line) for line in out if line.startswith(b"{")]
    assert any(line["event"] == "request" and line["provider"] == "mock" for line in lines)


PID_PLUGIN = """
import os
from interlock.core import Plugin, hookimpl

class Pid(Plugin):
    name = "pid"

    @hookimpl
    def pre_forward(self, ctx):
        ctx.add_header("x-pid", str(os.getpid()))
"""


async def test_serve_with_two_workers(tmp_path: Path) -> None:
    """Both worker processes serve: each answer names the process that made it."""
    plugin = tmp_path / "pid.py"
    plugin.write_text(PID_PLUGIN)
    config = tmp_path / "plugins.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/db.sqlite"\n'
        '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["m"]\n'
        f'[plugins.pid]\npath = "{plugin}"\n'
    )
    pids: set[str] = set()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with interlock("serve", "--config", str(config), "--workers", "2", cwd=tmp_path) as (
        url,
        _,
    ):
        # A new connection for every request, a few at a time, so the kernel hands them
        # to whichever worker accepts first; bounded by a count of requests, not by time.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=GUARD) as client:
            for _ in range(100):
                answers = await asyncio.gather(
                    *(client.post(f"{url}/v1/chat/completions", json=body) for _ in range(4))
                )
                assert all(a.status_code == 200 for a in answers)
                pids.update(a.headers["x-pid"] for a in answers)
                if len(pids) == 2:
                    break
    assert len(pids) == 2, f"only process {pids} answered 400 requests"
    assert str(os.getpid()) not in pids


async def test_mock_upstream_command(tmp_path: Path) -> None:
    async with interlock("mock-upstream", "--chunks", "5", cwd=tmp_path) as (url, _):
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{url}/v1/chat/completions",
                json={
                    "model": "x",
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
    assert resp.content.endswith(b"data: [DONE]\n\n")


def test_several_workers_with_in_process_counters_are_refused(tmp_path: Path) -> None:
    import subprocess

    plugin = tmp_path / "counting.py"
    plugin.write_text(
        "from interlock.core import Plugin\n"
        "class Counting(Plugin):\n    name = 'counting'\n    needs_shared_counters = True\n"
    )
    config = tmp_path / "plugins.toml"
    config.write_text(f'[plugins.counting]\npath = "{plugin}"\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "interlock.core.cli",
            "serve",
            "--config",
            str(config),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        "[counters] key `url`: 2 workers with in-process counters would multiply the limits of counting"
        in result.stderr
    )


async def test_serve_fast_profile(tmp_path: Path) -> None:
    """`--fast`: uvicorn + httptools with the aiohttp client, on a port the OS picked
    (the banner names it: the socket is bound before the server starts)."""
    config = tmp_path / "plugins.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/db.sqlite"\n'
        '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["m"]\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlock.core.cli",
        "serve",
        "--fast",
        "--config",
        str(config),
        "--port",
        "0",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        banner = await asyncio.wait_for(proc.stderr.readline(), GUARD)
        assert b"fast profile: uvicorn + httptools" in banner
        found = re.search(rb"serving on (http://127\.0\.0\.1:\d+)", banner)
        assert found, banner
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{found.group(1).decode()}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), GUARD)
    assert proc.returncode == 0


def test_version_names_the_python_and_each_profiles_libraries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"interlock {metadata.version('interlock')}"
    impl, ver = platform.python_implementation(), platform.python_version()
    assert lines[1].startswith(f"python: {impl} {ver} on linux")
    assert lines[2] == f"event loop: uvloop {metadata.version('uvloop')}"
    v = metadata.version
    assert lines[3] == (
        f"profile default: hypercorn {v('hypercorn')}, httpx {v('httpx')}, "
        f"httpx-aiohttp {v('httpx-aiohttp')}"
    )
    assert lines[4] == (
        f"profile fast: uvicorn {v('uvicorn')}, httptools {v('httptools')}, aiohttp {v('aiohttp')}"
    )
    assert lines[5].startswith("plugins (entry points): ")


def test_version_says_what_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("uvicorn", "httptools") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    lines = version.report()
    assert (
        lines[4]
        == f"profile fast: uvicorn not installed, httptools not installed, aiohttp {metadata.version('aiohttp')}"
    )


def test_version_of_a_library_without_metadata_comes_from_the_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = metadata.version

    def no_metadata(name: str) -> str:
        if name in ("httpx", "interlock"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(version.metadata, "version", no_metadata)
    assert version.library("httpx", "httpx") == f"httpx {httpx.__version__}"
    assert version.report()[0] == "interlock unknown (no package metadata)"


def test_mock_upstream_help_explains_every_option_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["mock-upstream", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for expected in (
        "--port PORT port to listen on, 0 for any free one (default: 9000)",
        "--latency-ms LATENCY_MS wait before the first byte of every answer (default: 0.0)",
        "--chunk-delay-ms CHUNK_DELAY_MS wait between streamed chunks (default: 0.0)",
        "--words WORDS words in every answer (default: 24)",
        "--chunks CHUNKS content chunks in a streamed answer (at least 5) (default: 8)",
        "--host HOST address to listen on (default: 127.0.0.1)",
    ):
        assert expected in text


@pytest.mark.parametrize("fast", [False, True])
async def test_serve_with_json_logs_prints_nothing_but_json_lines(
    tmp_path: Path, fast: bool
) -> None:
    """`--log-format json`: the banner, the server library's own lines, the request
    lines and the shutdown line are all JSON, on both profiles."""
    args = ["serve", "--log-format", "json", *(["--fast"] if fast else [])]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlock.core.cli",
        *args,
        "--port",
        "0",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "INTERLOCK_CONFIG": ""},
    )
    assert proc.stderr is not None
    banner = await asyncio.wait_for(proc.stderr.readline(), GUARD)
    url = msgspec.json.decode(banner)["url"]
    try:
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{url}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), GUARD)
    lines = [line for line in (banner + stderr + stdout).splitlines() if line.strip()]
    events = [msgspec.json.decode(line) for line in lines]  # each line is JSON, or this fails
    names = [e["event"] for e in events]
    assert "request" in names and names.count("stopped") == 1
    if not fast:  # hypercorn says where it runs; its line is JSON too
        assert any(e.get("logger") == "hypercorn.error" for e in events)
