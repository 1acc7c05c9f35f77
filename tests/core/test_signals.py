"""SIGTERM and SIGINT against real `interlock serve` processes, on both server profiles.

A stop signal during an open stream: the stream finishes when it can within
`[server] shutdown_timeout_s`, and otherwise ends with an error event in the caller's
format; the process exits 0 and no process it started is left running. Processes are
found through /proc (their parent ids), before the signal, and checked after the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support import GUARD

BANNER = re.compile(rb"serving on (http://127\.0\.0\.1:\d+)")
OPENAI_BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_BODY = {**OPENAI_BODY, "max_tokens": 50}
OPENAI_CUT = b'"type":"shutting_down"'
ANTHROPIC_CUT = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"'


def _config(tmp_path: Path, *, shutdown_timeout_s: float, chunk_delay_ms: int) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(
        f"[server]\nshutdown_timeout_s = {shutdown_timeout_s}\n"
        f'[store]\nurl = "sqlite:///{tmp_path}/interlock.db"\n'
        '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'
        f"chunks = 5\nchunk_delay_ms = {chunk_delay_ms}\n"
    )
    return path


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.asynccontextmanager
async def gateway(
    config: Path, *args: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlock.core.cli",
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        *args,
        cwd=config.parent,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    drain = None
    try:
        seen = b""
        url = None
        while url is None:
            line = await asyncio.wait_for(proc.stderr.readline(), GUARD)
            assert line, f"server exited: {seen.decode()}"
            seen += line
            if found := BANNER.search(line):
                url = found.group(1).decode()
        # Keep reading what it prints, so a full pipe never blocks it.
        drain = asyncio.ensure_future(proc.stderr.read())
        yield proc, url
    finally:
        if proc.returncode is None:
            for pid in descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
            await proc.wait()
        if drain is not None:
            await drain


async def _stop_during_streams(
    proc: asyncio.subprocess.Process, url: str, sig: int
) -> tuple[bytes, bytes, set[int]]:
    """Open an OpenAI and an Anthropic stream, send `sig` once both have begun, and read
    both to their end. Returns both bodies and the processes the server had started."""
    async with httpx.AsyncClient(timeout=GUARD) as client:
        async with (
            client.stream("POST", f"{url}/v1/chat/completions", json=OPENAI_BODY) as openai,
            client.stream("POST", f"{url}/v1/messages", json=ANTHROPIC_BODY) as anthropic,
        ):
            streams = [openai.aiter_bytes(), anthropic.aiter_bytes()]
            heads = [await asyncio.wait_for(anext(s), GUARD) for s in streams]
            started = descendants(proc.pid)
            proc.send_signal(sig)

            async def rest(head: bytes, stream: AsyncIterator[bytes]) -> bytes:
                return head + b"".join([c async for c in stream])

            bodies = await asyncio.wait_for(
                asyncio.gather(*(rest(h, s) for h, s in zip(heads, streams, strict=True))),
                GUARD,
            )
    return bodies[0], bodies[1], started


async def _exits_cleanly(proc: asyncio.subprocess.Process, started: set[int]) -> None:
    assert await asyncio.wait_for(proc.wait(), GUARD) == 0
    assert not alive(proc.pid)
    left = [pid for pid in started if alive(pid)]
    assert not left, f"still running after the server exited: {left}"


@pytest.mark.parametrize("profile", ["default", "fast"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stream_still_open_at_the_deadline_ends_with_an_error_event(
    tmp_path: Path, profile: str, sig: int
) -> None:
    config = _config(tmp_path, shutdown_timeout_s=0.2, chunk_delay_ms=3_600_000)
    args = ["--fast"] if profile == "fast" else []
    async with gateway(config, *args) as (proc, url):
        openai, anthropic, started = await _stop_during_streams(proc, url, sig)
        await _exits_cleanly(proc, started)
    assert openai.rstrip().splitlines()[-1].startswith(b'data: {"error":')
    assert OPENAI_CUT in openai and b"[DONE]" not in openai
    assert ANTHROPIC_CUT in anthropic and b"message_stop" not in anthropic


@pytest.mark.parametrize("profile", ["default", "fast"])
async def test_streams_that_finish_within_the_timeout_finish_whole(
    tmp_path: Path, profile: str
) -> None:
    config = _config(tmp_path, shutdown_timeout_s=60, chunk_delay_ms=100)
    args = ["--fast"] if profile == "fast" else []
    async with gateway(config, *args) as (proc, url):
        openai, anthropic, started = await _stop_during_streams(proc, url, signal.SIGTERM)
        await _exits_cleanly(proc, started)
    assert openai.endswith(b"data: [DONE]\n\n") and OPENAI_CUT not in openai
    assert b"event: message_stop" in anthropic and ANTHROPIC_CUT not in anthropic


@pytest.mark.parametrize("profile", ["default", "fast"])
async def test_workers_drain_and_none_is_left_behind(tmp_path: Path, profile: str) -> None:
    config = _config(tmp_path, shutdown_timeout_s=0.2, chunk_delay_ms=3_600_000)
    args = ["--workers", "2", *(["--fast"] if profile == "fast" else [])]
    async with gateway(config, *args) as (proc, url):
        openai, anthropic, started = await _stop_during_streams(proc, url, signal.SIGTERM)
        assert len(started) >= 2  # the two workers (and multiprocessing's resource tracker)
        await _exits_cleanly(proc, started)
    assert OPENAI_CUT in openai
    assert ANTHROPIC_CUT in anthropic
