"""Shared by the audit tests: a gateway configuration with a tiny auth/policy plugin, and
the audit table read back from the SQLite file (with the sqlite3 module, as an auditor
would, not through the gateway)."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import msgspec

from interlock.plugins.audit.record import COLUMNS
from tests.core.test_proxy_openai import COMPLETION

CANARY_KEY = "vk-canary-4f9d2c7a1b8e"  # a client's virtual key: must never be stored

READY = msgspec.json.encode({**COMPLETION, "id": "chatcmpl-ready"})

# `Authorization: Bearer vk-<anything>` is tenant acme, key id key_7 (a 401 without one);
# x-forbid: 403; x-limit: 429; x-ready: a ReadyResponse.
POLICY = """
import msgspec
from interlock.core import GatewayError, Identity, Plugin, ReadyResponse, hookimpl
from tests.plugins.audit.support import READY


class Policy(Plugin):
    name = "policy"

    @hookimpl
    def pre_auth(self, ctx):
        auth = ctx.headers.get("authorization", "")
        if not auth.startswith("Bearer vk-"):
            raise GatewayError(401, "authentication_error", "a virtual key is required")
        if "x-forbid" in ctx.headers:
            raise GatewayError(403, "permission_error", "not for this key")
        ctx.identity = Identity(tenant="acme", key_id="key_7", name="ci")

    @hookimpl
    def pre_forward(self, ctx):
        if "x-limit" in ctx.headers:
            raise GatewayError(429, "rate_limit_error", "slow down", headers={"retry-after": "1"})
        if "x-ready" in ctx.headers:
            ctx.response = ReadyResponse(READY)
"""


def policy_plugin(tmp_path: Path) -> str:
    path = tmp_path / "policy.py"
    path.write_text(textwrap.dedent(POLICY))
    return f'\n[plugins.policy]\npath = "{path}"\n'


def providers(url: str) -> str:
    return f"""
[[providers]]
name = "up"
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-test-upstream-key"
models = ["gpt-4o", "gpt-4o-mini"]

[[providers]]
name = "backup"
kind = "openai"
base_url = "{url}/backup/v1"
api_key = "sk-test-backup-key"
models = ["gpt-4o"]
"""


def audit_table(settings: str = "") -> str:
    return f"\n[plugins.audit]\n{textwrap.dedent(settings)}\n"


def records(db: Path) -> list[dict[str, Any]]:
    """Every audit record in the file, oldest first, JSON columns decoded."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM audit_log ORDER BY chain_id, seq"
        ).fetchall()
    out = []
    for row in rows:
        doc = dict(zip(COLUMNS, row, strict=True))
        for column in ("tags", "attempts", "redactions"):
            doc[column] = msgspec.json.decode(doc[column])
        out.append(doc)
    return out


def by_request_id(db: Path) -> dict[str, dict[str, Any]]:
    return {r["request_id"]: r for r in records(db)}


def store_bytes(tmp_path: Path) -> bytes:
    """The SQLite database as bytes, its write-ahead log included."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("interlock.db*")))
