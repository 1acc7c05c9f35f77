"""Durable state (tenants, keys, spend ledger, audit log) behind one small interface.

The default is a SQLite file in WAL mode through aiosqlite, so the event loop never waits
on disk; PostgreSQL joins for several replicas. The core itself only checks that the
store answers (`/readyz`); plugins own their tables.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..config import ConfigError

__all__ = ["Migration", "Store", "open_store"]


class Migration:  # TEMPORARY until the store branch lands
    version: int


class Store(Protocol):
    url: str

    async def ping(self) -> bool: ...
    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None: ...
    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
    async def close(self) -> None: ...
    async def migrate(self, owner: str, migrations: Any) -> list[int]: ...


async def open_store(url: str) -> Store:
    if url.startswith("sqlite://"):
        from .sqlite import SqliteStore

        return await SqliteStore.open(url)
    raise ConfigError(
        f"[store] key `url`: unsupported store '{url.split(':', 1)[0]}' (sqlite:///PATH)"
    )
