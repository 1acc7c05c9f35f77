"""The audit tables, as migrations both stores apply, and the statements that use them.

`audit_log` holds the records, keyed by (chain_id, seq): a request id comes from the
client and may repeat. `audit_chains` has one row per writing process: where its chain
starts now (retention moves that forward, with the hash the first kept record links to)
and the last record written (updated in the same transaction as every batch), so
`verify` also notices records removed from a chain's end. Portable types only: TEXT,
BIGINT, DOUBLE PRECISION (store/__init__.py).
"""

from __future__ import annotations

from interlock.core import Migration

from .record import COLUMNS

__all__ = [
    "INSERT",
    "INSERT_CHAIN",
    "MIGRATIONS",
    "SELECT",
    "UPDATE_HEAD",
]

_TYPES = {
    "seq": "BIGINT NOT NULL",
    "stream": "BIGINT NOT NULL",
    "status": "BIGINT NOT NULL",
    "prompt_tokens": "BIGINT NOT NULL",
    "completion_tokens": "BIGINT NOT NULL",
    "cached_tokens": "BIGINT NOT NULL",
    "cache_write_tokens": "BIGINT NOT NULL",
    "usage_estimated": "BIGINT NOT NULL",
    "cost_usd": "DOUBLE PRECISION NOT NULL",
    "latency_ms": "DOUBLE PRECISION NOT NULL",
    "ttfb_ms": "DOUBLE PRECISION",
}
_NOT_NULL = {"chain_id", "ts", "request_id", "method", "path", "inbound", "endpoint"}
_NOT_NULL |= {"tags", "attempts", "redactions", "prev_hash", "hash"}


def _column(name: str) -> str:
    kind = _TYPES.get(name) or ("TEXT NOT NULL" if name in _NOT_NULL else "TEXT")
    return f"{name} {kind}"


MIGRATIONS = (
    Migration(
        version=1,
        sql=(
            "CREATE TABLE audit_log ("
            + ", ".join(_column(c) for c in COLUMNS)
            + ", PRIMARY KEY (chain_id, seq))",
            "CREATE INDEX audit_log_ts ON audit_log (ts)",
            "CREATE INDEX audit_log_tenant_ts ON audit_log (tenant, ts)",
            "CREATE INDEX audit_log_request_id ON audit_log (request_id)",
            "CREATE TABLE audit_chains ("
            "chain_id TEXT NOT NULL PRIMARY KEY, started TEXT NOT NULL, host TEXT NOT NULL,"
            " pid BIGINT NOT NULL, first_seq BIGINT NOT NULL, first_prev TEXT NOT NULL,"
            " last_seq BIGINT NOT NULL, last_hash TEXT NOT NULL)",
        ),
    ),
)

INSERT = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
SELECT = f"SELECT {', '.join(COLUMNS)} FROM audit_log"
INSERT_CHAIN = (
    "INSERT INTO audit_chains (chain_id, started, host, pid, first_seq, first_prev,"
    " last_seq, last_hash) VALUES (?, ?, ?, ?, 1, ?, 0, ?)"
)
UPDATE_HEAD = "UPDATE audit_chains SET last_seq = ?, last_hash = ? WHERE chain_id = ?"
