"""Per-plugin schema migrations, one algorithm for both stores.

Each owner (a plugin name) declares versions 1, 2, 3 ...; `interlock_migrations` records
which ones this database has. A missing version is applied in its own transaction
together with its record, under a lock the store provides (SQLite: BEGIN IMMEDIATE;
PostgreSQL: an advisory lock on the owner), and the applied set is read again under that
lock, so two processes starting at once apply each version exactly once. A declared
version lower than one already applied, yet missing, means the history diverged: that
is an error, never silently filled in. Versions applied but no longer declared (an older
release during a rolling deploy) are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from itertools import pairwise
from typing import Literal

from . import Migration, StoreError, Tx

__all__ = ["RECORD_DDL", "ensure_record_table", "run"]

Dialect = Literal["sqlite", "postgresql"]
LockedTx = Callable[[str], AbstractAsyncContextManager[Tx]]

RECORD_DDL: dict[Dialect, str] = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS interlock_migrations ("
        " owner TEXT NOT NULL, version INTEGER NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
        " PRIMARY KEY (owner, version))"
    ),
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS interlock_migrations ("
        " owner TEXT NOT NULL, version INTEGER NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
        " PRIMARY KEY (owner, version))"
    ),
}
_APPLIED = "SELECT version FROM interlock_migrations WHERE owner = ?"
_RECORD = "INSERT INTO interlock_migrations (owner, version) VALUES (?, ?)"
# The lock name under which the record table itself is created.
BOOTSTRAP = "interlock_migrations"


def _declared(owner: str, migrations: Sequence[Migration]) -> list[Migration]:
    if not owner:
        raise StoreError("a migration owner must be a non-empty name")
    ordered = sorted(migrations, key=lambda m: m.version)
    for before, after in pairwise(ordered):
        if before.version == after.version:
            raise StoreError(f"migrations of {owner!r}: version {after.version} twice")
    if ordered and ordered[0].version < 1:
        raise StoreError(f"migrations of {owner!r}: versions start at 1")
    return ordered


def _next(owner: str, declared: list[Migration], applied: set[int]) -> Migration | None:
    newest = max(applied, default=0)
    for migration in declared:
        if migration.version in applied:
            continue
        if migration.version < newest:
            raise StoreError(
                f"migration {owner!r} version {migration.version} is missing from this "
                f"database, which already has version {newest}: its history diverged"
            )
        return migration
    return None


def _statements(migration: Migration, dialect: Dialect) -> tuple[str, ...]:
    if dialect == "postgresql" and migration.postgresql is not None:
        return migration.postgresql
    return migration.sql


async def run(
    owner: str,
    migrations: Sequence[Migration],
    dialect: Dialect,
    read: Tx,
    locked: LockedTx,
) -> list[int]:
    """Apply what `owner` lacks; `read` answers without a lock, `locked(name)` holds one."""
    declared = _declared(owner, migrations)
    applied = {row[0] for row in await read.fetchall(_APPLIED, (owner,))}
    if _next(owner, declared, applied) is None:
        return []  # the usual start-up: nothing to do, no write lock taken
    done: list[int] = []
    while True:
        async with locked(owner) as tx:
            applied = {row[0] for row in await tx.fetchall(_APPLIED, (owner,))}
            step = _next(owner, declared, applied)
            if step is None:
                return done
            try:
                for statement in _statements(step, dialect):
                    await tx.execute(statement)
                await tx.execute(_RECORD, (owner, step.version))
            except StoreError as exc:
                raise StoreError(
                    f"migration {owner!r} version {step.version} failed, rolled back: {exc}"
                ) from exc
        done.append(step.version)


async def ensure_record_table(dialect: Dialect, locked: LockedTx) -> None:
    async with locked(BOOTSTRAP) as tx:
        await tx.execute(RECORD_DDL[dialect])
