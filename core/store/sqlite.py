"""The SQLite store: one aiosqlite connection (a thread of its own), WAL, parameters only."""

from __future__ import annotations

from typing import Any

import aiosqlite

__all__ = ["SqliteStore"]


class SqliteStore:
    def __init__(self, url: str, db: aiosqlite.Connection) -> None:
        self.url = url
        self._db = db

    @classmethod
    async def open(cls, url: str) -> SqliteStore:
        path = url.removeprefix("sqlite://")
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel.db, sqlite:////abs.db
        db = await aiosqlite.connect(path or ":memory:")
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        return cls(url, db)

    async def ping(self) -> bool:
        try:
            async with self._db.execute("SELECT 1") as cursor:
                row = await cursor.fetchone()
        except Exception:
            return False
        return row == (1,)

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        await self._db.execute(sql, params)
        await self._db.commit()

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self._db.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def close(self) -> None:
        await self._db.close()
