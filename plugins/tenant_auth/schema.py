"""tenant_auth's tables, as migrations the core applies at start-up (and the CLI before
it touches the store), written once for SQLite and PostgreSQL.

`virtual_keys.hash` is the SHA-256 (hex) of the key: the key itself is stored nowhere.
Times are UNIX seconds (DOUBLE PRECISION); lists and maps are JSON text. Revoked keys
stay (with `revoked_at`) so a list shows what was revoked and when.
"""

from __future__ import annotations

from interlock.core import Migration

__all__ = ["MIGRATIONS"]

MIGRATIONS = (
    Migration(
        version=1,
        sql=(
            """CREATE TABLE tenants (
                name TEXT PRIMARY KEY,
                monthly_budget_usd DOUBLE PRECISION,
                rpm BIGINT,
                tpm BIGINT,
                models TEXT NOT NULL,
                provider_keys TEXT NOT NULL,
                metadata TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE virtual_keys (
                id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                hash TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL,
                name TEXT,
                budget_usd DOUBLE PRECISION,
                rpm BIGINT,
                tpm BIGINT,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION
            )""",
            "CREATE INDEX virtual_keys_by_tenant ON virtual_keys (tenant, id)",
        ),
    ),
)
