"""Tamper evidence and the auditor's commands: `interlock audit verify` finds the first
broken link whatever was edited, removed or added, and `interlock audit export` writes
the records as JSON lines or CSV. The commands run as real processes on the file the
gateway wrote."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import sqlite3
import sys
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.core.test_proxy_openai import COMPLETION
from tests.plugins.audit.support import audit_table, providers, records
from tests.support import GUARD, Reply, run_gateway


async def cli(*args: str, cwd: Path, process: bool = False) -> tuple[int, str, str]:
    """`interlock audit ARGS` in `cwd`: (exit code, stdout, stderr). In this process (in
    a thread, as the command runs its own event loop), or as a real process."""
    if not process:
        return await asyncio.to_thread(_in_process, list(args), cwd)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlock.core.cli",
        "audit",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), GUARD)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def write_records(upstream, tmp_path: Path, n: int, restarts: int = 1) -> Path:
    """`n` requests through the gateway, which restarts `restarts` times (a chain each);
    tmp_path/plugins.toml is then the gateway's configuration, the store URL included."""
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = providers(url) + audit_table()
    for run in range(restarts):
        async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
            for i in range(n):
                headers = {
                    "x-request-id": f"run{run}-req{i}",
                    "x-interlock-tags": f"tenant=t{i % 2}",
                }
                body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
                resp = await client.post(gw + "/v1/chat/completions", json=body, headers=headers)
                assert resp.status_code == 200
    return tmp_path / "interlock.db"


def _in_process(args: list[str], cwd: Path) -> tuple[int, str, str]:
    from interlock.core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["audit", *args])
    return code, out.getvalue(), err.getvalue()


def edit(db: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql, params)


async def test_an_untouched_log_verifies(upstream, tmp_path: Path) -> None:
    await write_records(upstream, tmp_path, 5, restarts=2)
    code, out, _ = await cli("verify", "--config", "plugins.toml", cwd=tmp_path, process=True)
    assert (code, out.strip()) == (0, "ok: 10 record(s) in 2 chain(s); every link holds")


TAMPERING = [
    # (what an insider does, the record verify must name, the reason it gives)
    ("UPDATE audit_log SET status = 500 WHERE seq = 3", 3, "changed after it was written"),
    ("UPDATE audit_log SET cost_usd = 0.0 WHERE seq = 1", 1, "changed after it was written"),
    ("UPDATE audit_log SET tenant = 'other' WHERE seq = 5", 5, "changed after it was written"),
    ("DELETE FROM audit_log WHERE seq = 2", 2, "record 2 is missing"),
    ("DELETE FROM audit_log WHERE seq >= 4", 4, "missing from the end"),
    ("DELETE FROM audit_log WHERE seq = 1", 1, "record 1 is missing"),
    ("UPDATE audit_log SET seq = seq + 10 WHERE seq = 5", 5, "record 5 is missing"),
]


@pytest.mark.parametrize(("sql", "seq", "reason"), TAMPERING)
async def test_verify_names_the_first_broken_link(
    upstream, tmp_path: Path, sql: str, seq: int, reason: str
) -> None:
    db = await write_records(upstream, tmp_path, 5)
    edit(db, sql)
    code, out, _ = await cli("verify", "--config", "plugins.toml", cwd=tmp_path)
    assert code == 1
    assert out.startswith("BROKEN: chain ") and f"record {seq}" in out and reason in out, out


async def test_a_rewritten_hash_breaks_the_next_link(upstream, tmp_path: Path) -> None:
    """Recomputing the edited record's own hash does not help: the next one links to
    the old hash."""
    from interlock.plugins.audit.record import COLUMNS, chain_hash

    db = await write_records(upstream, tmp_path, 4)
    row = next(r for r in records(db) if r["seq"] == 2)
    with sqlite3.connect(db) as conn:
        raw = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE seq = 2").fetchone()
        content = list(raw[2:-2])
        content[COLUMNS.index("status") - 2] = 404
        digest = chain_hash(row["prev_hash"], row["chain_id"], 2, content)
        conn.execute("UPDATE audit_log SET status = 404, hash = ? WHERE seq = 2", (digest,))
    code, out, _ = await cli("verify", "--config", "plugins.toml", cwd=tmp_path)
    assert code == 1 and "record 3" in out and "does not link" in out


async def test_an_inserted_chain_nobody_registered_is_reported(upstream, tmp_path: Path) -> None:
    db = await write_records(upstream, tmp_path, 2)
    edit(db, "UPDATE audit_log SET chain_id = 'forged' WHERE seq = 2")
    code, out, _ = await cli("verify", "--config", "plugins.toml", cwd=tmp_path)
    assert code == 1 and "forged" in out and "unregistered" in out


async def test_export_as_json_lines_and_csv(upstream, tmp_path: Path) -> None:
    db = await write_records(upstream, tmp_path, 4)
    stored = records(db)
    code, out, err = await cli(
        "export", "--since", "2000-01-01", "--config", "plugins.toml", cwd=tmp_path, process=True
    )
    assert code == 0 and "4 record(s) exported" in err
    lines = [msgspec.json.decode(line) for line in out.splitlines()]
    assert [d["request_id"] for d in lines] == [r["request_id"] for r in stored]
    assert lines[0]["attempts"] == stored[0]["attempts"]  # embedded JSON, not a string
    code, out, _ = await cli(
        "export", "--since", "2000-01-01", "--format", "csv", "--output", "out.csv",
        "--config", "plugins.toml", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0 and out == ""
    table = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert [r["hash"] for r in table] == [r["hash"] for r in stored]
    assert table[0]["ttfb_ms"] != "" and float(table[0]["cost_usd"]) == stored[0]["cost_usd"]


async def test_export_filters_by_time(upstream, tmp_path: Path) -> None:
    db = await write_records(upstream, tmp_path, 3)
    _, second, _ = records(db)
    edit(db, "UPDATE audit_log SET ts = '2026-01-05T10:00:00.000000Z' WHERE seq = 1")
    edit(db, "UPDATE audit_log SET ts = '2026-01-06T10:00:00.000000Z' WHERE seq = 2")
    edit(db, "UPDATE audit_log SET ts = '2026-01-07T10:00:00.000000Z' WHERE seq = 3")
    code, out, _ = await cli(
        "export", "--since", "2026-01-06", "--until", "2026-01-07T00:00:00+00:00",
        "--config", "plugins.toml", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0
    assert [msgspec.json.decode(line)["request_id"] for line in out.splitlines()] == [
        second["request_id"]
    ]
    code, _, err = await cli(
        "export", "--since", "last tuesday", "--config", "plugins.toml", cwd=tmp_path
    )
    assert code == 2 and "--since" in err


async def test_commands_refuse_a_missing_database(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text(f'[store]\nurl = "sqlite:///{tmp_path / "none.db"}"\n')
    code, _, err = await cli("verify", "--config", "plugins.toml", cwd=tmp_path, process=True)
    assert code == 2 and "no database" in err
    assert not (tmp_path / "none.db").exists()
