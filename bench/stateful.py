"""What the policy scenarios need around the server: a Redis and a PostgreSQL database
of their own, a virtual key made with the CLI before the server starts, and the checks
afterwards (every request has its audit record and its spend-ledger row, every budget
reservation was settled).

Redis is a `redis-server` of our own on a free loopback port (no persistence), so
`INFO commandstats` counts this benchmark's commands and nobody else's; PostgreSQL is
a database of our own (`interlock_bench_<random>`) on the server at `--pg`, dropped at
the end. Both are started and removed by the runner; nothing here touches anything it
did not create.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.procs import Proc, free_port, pinned

PY = sys.executable


class Redis:
    """A private redis-server on a free port, pinned with the load."""

    def __init__(self, tmp: Path, core: str | None) -> None:
        self.port = free_port()
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ]
        self.proc = Proc("redis", pinned(cmd, core), tmp / "redis.log")
        self.proc.wait_port(self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        cmd = ["redis-cli", "-p", str(self.port), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def commands(self) -> dict[str, int]:
        """Calls per command since the server started (INFO itself left out). Commands a
        Lua script runs count here too; `reads` counts round trips."""
        out: dict[str, int] = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line[len("cmdstat_") :].partition(":")
                calls = int(rest.split(",")[0].split("=")[1])
                if name != "info":
                    out[name] = calls
        out["reads"] = self.reads()
        return out

    def reads(self) -> int:
        """Reads of client sockets the server processed: one per round trip (a pipeline's
        commands arrive in one), our own INFO calls included (one each)."""
        for line in self.cli("INFO", "stats").splitlines():
            if line.startswith("total_reads_processed:"):
                return int(line.split(":")[1])
        return 0

    def stop(self) -> None:
        self.proc.stop()


def per_request(before: dict[str, int], after: dict[str, int], requests: int) -> dict:
    """Round trips per request over a run (socket reads, less those of our INFO calls), and
    commands per request by command (a script's own commands included)."""
    n = max(1, requests)
    # Each redis-cli call is two reads (its command, then its close): the two of `after`.
    trips = after["reads"] - before["reads"] - 4
    diff = {
        k: v - before.get(k, 0) for k, v in after.items() if k != "reads" and v != before.get(k, 0)
    }
    return {
        "round_trips": trips,
        "round_trips_per_request": trips / n,
        "by_command": {k: round(v / n, 3) for k, v in sorted(diff.items())},
    }


class Postgres:
    """A database of our own on a running PostgreSQL server (trust auth on loopback)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"interlock_bench_{os.urandom(4).hex()}"
        self._psql(f"CREATE DATABASE {self.name}")
        base, _, _ = admin_url.rpartition("/")
        self.url = f"{base}/{self.name}"

    def _psql(self, sql: str) -> None:
        subprocess.run(["psql", self.admin_url, "-qc", sql], check=True, capture_output=True)

    def drop(self) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def virtual_key(config: Path, tenant: str, rpm: int, tpm: int, budget: float, cwd: Path) -> str:
    """A tenant and its key, made with `interlock tenants create` / `keys create` on the
    store `config` names, as an operator would before starting the server."""
    cli = [PY, "-m", "interlock.core.cli"]
    limits = ["--rpm", str(rpm), "--tpm", str(tpm), "--budget", str(budget)]
    subprocess.run(
        [*cli, "tenants", "create", tenant, "--config", str(config), *limits],
        check=True,
        capture_output=True,
        cwd=cwd,
    )
    out = subprocess.run(
        [*cli, "keys", "create", "--tenant", tenant, "--config", str(config), *limits],
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
    ).stdout
    return out.strip().splitlines()[-1]


def budget_probe(port: int, key: str, body: bytes) -> tuple[str, float]:
    """One request: its id and `x-interlock-budget-remaining-usd` (the least left of the
    budgets, open reservations counted, this request's own reservation included)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        resp.read()
        return resp.headers["x-request-id"], float(resp.headers["x-interlock-budget-remaining-usd"])


def records(db: Path) -> dict:
    """What the SQLite store holds: audit records (all, streamed, status 200) and ledger
    rows (count, estimated ones, total cost)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        audit, streamed, ok = conn.execute(
            "SELECT COUNT(*), SUM(stream), SUM(status = 200) FROM audit_log"
        ).fetchone()
        rows, estimated, cost = conn.execute(
            "SELECT COUNT(*), SUM(estimated), SUM(cost_usd) FROM spend_ledger"
        ).fetchone()
    return {
        "audit": audit,
        "audit_streamed": streamed or 0,
        "audit_ok": ok or 0,
        "ledger": rows,
        "ledger_estimated": estimated or 0,
        "ledger_usd": cost or 0.0,
    }


def ledger_cost(db: Path, request_id: str) -> float:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        row = conn.execute(
            "SELECT SUM(cost_usd) FROM spend_ledger WHERE request_id = ?", (request_id,)
        ).fetchone()
    return float(row[0] or 0.0)


def wait_for(db: Path, audit: int, ledger: int, timeout: float = 30.0) -> tuple[dict, float]:
    """Poll the store until it holds `audit` records and `ledger` rows (or `timeout`):
    what it holds then, and how long after the call that was."""
    t0 = time.monotonic()
    while True:
        seen = records(db)
        if (seen["audit"] >= audit and seen["ledger"] >= ledger) or (
            time.monotonic() - t0 > timeout
        ):
            return seen, time.monotonic() - t0
        time.sleep(0.01)
