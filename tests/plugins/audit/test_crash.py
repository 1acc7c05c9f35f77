"""The crash test: a real gateway process (durable audit on SQLite, the mock provider)
under concurrent load is killed with SIGKILL; every request whose response the client
received in full (a complete JSON body, or a stream through its last chunk) has its
record in the file afterwards, matched by the x-request-id the gateway sent."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import httpx

from tests.support import GUARD

RUNNING = re.compile(rb"Running on (http://127\.0\.0\.1:\d+)")
CONFIG = """
[store]
url = "sqlite:///{db}"

[logging]
level = "warning"

[[providers]]
name = "mock"
kind = "mock"
models = ["*"]
latency_ms = 2
chunk_delay_ms = 1

[plugins.audit]
durable = true
"""
WORKERS = 24  # concurrent clients
KILL_AFTER = 150  # complete responses before the kill


async def test_kill_9_under_load_loses_no_answered_request(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    config = tmp_path / "plugins.toml"
    config.write_text(CONFIG.format(db=db))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock.core.cli", "serve", "--config", str(config), "--port", "0",
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    url = None
    while url is None:
        line = await asyncio.wait_for(proc.stderr.readline(), GUARD)
        assert line, "the gateway exited before it listened"
        if found := RUNNING.search(line):
            url = found.group(1).decode()
    drain = asyncio.ensure_future(proc.stderr.read())  # keep the pipe from filling up

    complete: list[str] = []
    enough = asyncio.Event()

    async def client_loop(n: int) -> None:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"load {n}"}]}
        async with httpx.AsyncClient(timeout=GUARD) as client:
            i = 0
            while True:
                i += 1
                stream = (n + i) % 2 == 0
                try:
                    if stream:
                        async with client.stream(
                            "POST", url + "/v1/chat/completions", json={**body, "stream": True}
                        ) as resp:
                            rid = resp.headers["x-request-id"]
                            data = b"".join([part async for part in resp.aiter_bytes()])
                        ok = resp.status_code == 200 and data.endswith(b"data: [DONE]\n\n")
                    else:
                        resp = await client.post(url + "/v1/chat/completions", json=body)
                        rid = resp.headers["x-request-id"]
                        ok = resp.status_code == 200 and bool(resp.json()["choices"])
                except (httpx.HTTPError, ValueError):
                    return  # the gateway is gone: this answer was not received in full
                if ok:
                    complete.append(rid)
                    if len(complete) >= KILL_AFTER:
                        enough.set()

    clients = [asyncio.ensure_future(client_loop(n)) for n in range(WORKERS)]
    try:
        await asyncio.wait_for(enough.wait(), GUARD * 3)
        os.kill(proc.pid, signal.SIGKILL)  # mid-load, requests in flight
        await asyncio.wait_for(proc.wait(), GUARD)
        await asyncio.wait_for(asyncio.gather(*clients), GUARD)
    finally:
        for task in clients:
            task.cancel()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        drain.cancel()
    assert proc.returncode == -signal.SIGKILL

    # "Restart": open the file as the next gateway would (SQLite recovers its WAL).
    with sqlite3.connect(db) as conn:
        stored = {rid for (rid,) in conn.execute("SELECT request_id FROM audit_log")}
    assert len(complete) >= KILL_AFTER
    missing = [rid for rid in complete if rid not in stored]
    assert missing == []
