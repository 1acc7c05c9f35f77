"""The SQLite store: one aiosqlite connection (a thread of its own), WAL, parameters only.

The connection is in autocommit mode (`isolation_level=None`) and transactions are
explicit `BEGIN IMMEDIATE ... COMMIT`: the write lock is taken up front, so two processes
on one file wait for each other (busy_timeout) instead of failing half-way. One asyncio
lock serialises everything on the connection: a transaction holds it from BEGIN to
COMMIT, an autocommit call for its one statement, so no statement of one coroutine ever
lands inside another coroutine's transaction. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, Literal

import aiosqlite

from . import Migration, Row, StoreError, Tx
from .guard import TaskGuard, TxState
from .migrate import ensure_record_table, run

__all__ = ["SqliteStore"]


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:  # SQLite's messages name tables and columns, never values
        raise StoreError(f"sqlite: {type(exc).__name__}: {exc}") from exc


# Each statement is one trip to the connection's thread, cursor closed there: aiosqlite's
# `execute` returns a cursor whose closing is a second trip, and a trip (a queue hand-off
# and a wake-up of the event loop) costs ~15 µs of CPU, more than most statements.
def _run(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    cursor = _busy_retried(conn, sql, params)
    try:
        return max(cursor.rowcount, 0)
    finally:
        cursor.close()


def _run_many(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    conn.executemany(sql, rows).close()


def _run_fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Row]:
    cursor = _busy_retried(conn, sql, params)
    try:
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


_SQLITE_BUSY = 5  # the primary code; its extended codes (_SNAPSHOT, _RECOVERY) share the low byte
_BUSY_RETRY_S = 5.0  # as long as busy_timeout waits for a lock


def _busy_retried(
    conn: sqlite3.Connection,
    sql: str,
    params: Sequence[Any],
    *,
    clock: Any = time.monotonic,
    sleep: Any = time.sleep,
) -> sqlite3.Cursor:
    """`conn.execute`, tried again when SQLite says busy outside a transaction.

    busy_timeout makes a statement wait for another connection's lock, but SQLite does
    not wait in every case: an autocommit write whose WAL snapshot went stale while it
    waited (another gateway on the same file committed first) fails at once with
    SQLITE_BUSY_SNAPSHOT. Outside a transaction a failed statement changed nothing, so
    it is safe to run it again; inside one it is not (the caller's transaction decides),
    and neither is a busy that lasted the whole busy timeout. Runs on the connection's
    own thread, so the short pauses never block the event loop."""
    began = clock()
    pause = 0.001
    while True:
        try:
            return conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_BUSY
            if not busy or conn.in_transaction or clock() - began >= _BUSY_RETRY_S:
                raise
        sleep(pause)
        pause = min(pause * 2, 0.05)


async def _in_thread(db: aiosqlite.Connection, fn: Any, *args: Any) -> Any:
    """`fn(connection, *args)` on the connection's thread, in its queue's order."""
    return await db._execute(fn, db._conn, *args)  # type: ignore[no-untyped-call]


async def _execute(db: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> int:
    with _mapped():
        return int(await _in_thread(db, _run, sql, params))


async def _executemany(db: aiosqlite.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    with _mapped():
        await _in_thread(db, _run_many, sql, rows)


async def _fetchall(db: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[Row]:
    with _mapped():
        rows: list[Row] = await _in_thread(db, _run_fetchall, sql, params)
        return rows


class _SqliteTx:
    """The statements of one open transaction; refused once it has ended."""

    __slots__ = ("_db", "_state")

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._state = TxState()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._state.check()
        return await _execute(self._db, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._state.check()
        await _executemany(self._db, sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._state.check()
        return await _fetchall(self._db, sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


class SqliteStore:
    dialect: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, url: str, db: aiosqlite.Connection) -> None:
        self.url = url
        self._db = db
        self._lock = asyncio.Lock()
        self._guard = TaskGuard()
        self._record_table = False

    @classmethod
    async def open(cls, url: str) -> SqliteStore:
        path = url.removeprefix("sqlite://")
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel.db, sqlite:////abs.db
        # The busy timeout from the first statement on: switching to WAL takes a lock, and
        # two gateways starting on one file at once must wait for each other, not fail.
        db = await aiosqlite.connect(path or ":memory:", isolation_level=None, timeout=5.0)
        try:
            with _mapped():
                await db.execute("PRAGMA busy_timeout=5000")
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA synchronous=NORMAL")
                await db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await db.close()
            raise
        return cls(url, db)

    # -- autocommit: one statement under the lock --------------------------------------
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._guard.check()
        async with self._lock:
            return await _execute(self._db, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            self._guard.check()
            return
        async with self.transaction() as tx:  # all rows or none, and one commit not n
            await tx.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._guard.check()
        async with self._lock:
            return await _fetchall(self._db, sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    # -- transactions --------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        with self._guard.inside():
            async with self._lock:
                tx = _SqliteTx(self._db)
                try:
                    # Cancelled while BEGIN or COMMIT runs, the thread still finishes it:
                    # the rollback below (a no-op when no transaction is open) cleans up.
                    await _execute(self._db, "BEGIN IMMEDIATE", ())
                    try:
                        yield tx
                    finally:
                        tx._state.open = False
                    await _execute(self._db, "COMMIT", ())
                except BaseException as exc:
                    await self._rollback(exc)
                    raise

    async def _rollback(self, reason: BaseException) -> None:
        # Shielded: a cancelled caller must not leave the connection inside a transaction.
        # The queue of the connection's thread keeps order, so nothing overtakes it.
        try:
            await asyncio.shield(self._db.rollback())
        except (sqlite3.Error, ValueError) as exc:
            reason.add_note(f"and the rollback failed too: {type(exc).__name__}: {exc}")

    def _locked(self, owner: str) -> AbstractAsyncContextManager[Tx]:
        return self.transaction()  # BEGIN IMMEDIATE is the lock between processes

    async def migrate(self, owner: str, migrations: Sequence[Migration]) -> list[int]:
        if not self._record_table:
            await ensure_record_table("sqlite", self._locked)
            self._record_table = True
        return await run(owner, migrations, "sqlite", self, self._locked)

    # -- lifecycle -----------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            return await self.fetchall("SELECT 1") == [(1,)]
        except Exception:
            return False

    async def close(self) -> None:
        await self._db.close()
