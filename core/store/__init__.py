"""Durable state (tenants, keys, spend ledger, audit log) behind one small interface.

Two implementations, chosen by `[store] url`: a SQLite file in WAL mode through aiosqlite
(`sqlite:///path.db`, the default; `sqlite://` alone is in memory, for tests) and
PostgreSQL through an asyncpg pool (`postgresql://user@host:port/db`, for several
replicas). The event loop never waits on disk or network. The core only checks that
the store answers (`/readyz`); plugins own their tables and declare them as migrations.

SQL is written once, for both dialects, with `?` placeholders and parameters only, never
string formatting. `?` is only ever a placeholder (a `?` inside a quoted literal, a quoted
identifier or a comment is left alone; PostgreSQL's JSONB `?` operators cannot be used).
The portable subset: TEXT, BIGINT (PostgreSQL's INTEGER is 32-bit), DOUBLE PRECISION
(PostgreSQL's REAL is 32-bit), integers 0/1 for flags; binary columns need a dialect
override (`BLOB` / `BYTEA`). PostgreSQL checks a parameter's Python type against its
column (an int for a TEXT column is an error), so pass the type the column holds.

Errors are `StoreError`, whose message never quotes a parameter value. Outside a
transaction every call autocommits; inside `async with store.transaction() as tx:` use
`tx`, never `store` (that would be outside the transaction, and is refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

import msgspec

from ..config import ConfigError

__all__ = ["Migration", "Row", "Store", "StoreError", "Tx", "open_store"]

Row = tuple[Any, ...]


class StoreError(Exception):
    """A statement, transaction or migration failed; the message quotes no parameter value."""


class Migration(msgspec.Struct, frozen=True):
    """One step of a plugin's schema; applied once per database, in version order."""

    version: int  # 1, 2, 3 ... per owner
    sql: tuple[str, ...]  # statements for both dialects, one per string, no placeholders
    postgresql: tuple[str, ...] | None = None  # used instead of `sql` on PostgreSQL


class Tx(Protocol):
    """Statements inside one transaction (and the store's own autocommit calls)."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows inserted, updated or deleted (else 0)."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row, all or nothing."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row or None (SQLite reads every row: add LIMIT 1 when many match)."""
        ...


class Store(Tx, Protocol):
    """A database; each call outside a transaction autocommits."""

    url: str  # as configured, with any password replaced by ***
    dialect: Literal["sqlite", "postgresql"]

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Commit on exit, roll back on an exception (which then propagates unchanged)."""
        ...

    async def migrate(self, owner: str, migrations: Sequence[Migration]) -> list[int]:
        """Apply the versions `owner` lacks, each with its record in one transaction.

        Returns the versions applied by this call (empty when up to date). Safe when
        several processes start at once. Raises StoreError when a declared version is
        lower than one already applied yet missing, or when a migration fails (rolled back).
        """
        ...

    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


async def open_store(url: str) -> Store:
    """Open the store `url` names; ConfigError for an unknown scheme or an unreachable server."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from .sqlite import SqliteStore

        return await SqliteStore.open(url)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return await PostgresStore.open(url)
    raise ConfigError(
        f"[store] key `url`: unsupported store '{scheme}' "
        "(sqlite:///PATH or postgresql://USER@HOST:PORT/DB)"
    )
