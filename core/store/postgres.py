"""The PostgreSQL store: an asyncpg pool, for several replicas sharing one database.

`postgresql://user[:password]@host[:port]/db` (or `postgres://`), with these query
options of ours (any other query option goes to asyncpg, which passes what it does not
know to the server as a setting):

    pool_max=10          connections in the pool (at least one is opened at start-up)
    command_timeout=30   seconds any one statement may take
    connect_timeout=10   seconds to open a connection
    schema=NAME          search_path: tables live in this (existing) schema

Statements are written with `?` and rewritten to `$n` once each (placeholders.py). An
unreachable server at start-up is a ConfigError naming host:port/db and the user, never
the password; `url` on the store shows the password as ***. Errors are StoreError with
PostgreSQL's primary message only: the DETAIL line and data errors quote values.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from ..config import ConfigError
from . import Migration, Row, StoreError, Tx
from .guard import TaskGuard, TxState
from .migrate import ensure_record_table, run
from .placeholders import numbered

__all__ = ["PostgresStore"]

if TYPE_CHECKING:  # asyncpg's classes are generic in its stubs only
    _Target: TypeAlias = asyncpg.Pool[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
_OPTIONS = {"pool_max", "command_timeout", "connect_timeout", "schema"}
_COUNTED = {"INSERT", "UPDATE", "DELETE", "MERGE"}
# asyncpg's own data error: "invalid input for query argument $1: <the value> (<why>)".
_ARGUMENT = re.compile(r"invalid input for query argument (\$\d+(?: in element #\d+)?)")


class _Settings(NamedTuple):
    dsn: str  # for asyncpg, without our options
    redacted: str  # the url with the password as ***
    where: str  # host:port/db
    user: str
    password: str
    pool_max: int
    command_timeout: float
    connect_timeout: float
    schema: str | None


def _number(options: dict[str, str], key: str, default: float) -> float:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"[store] key `url`: `{key}` must be a positive number, not {raw!r}")
    return value


def _settings(url: str) -> _Settings:
    parts = urlsplit(url)
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError("[store] key `url`: its query string cannot be parsed") from None
    ours = {key: value for key, value in query if key in _OPTIONS}
    rest = [(key, value) for key, value in query if key not in _OPTIONS]
    pool_max = _number(ours, "pool_max", 10)
    if pool_max != int(pool_max):
        raise ConfigError(f"[store] key `url`: `pool_max` must be a whole number, not {pool_max}")
    hostport = parts.netloc.rpartition("@")[2] or "localhost"
    try:
        if parts.port is None and "," not in hostport:
            hostport = f"{hostport}:5432"
    except ValueError:
        raise ConfigError(f"[store] key `url`: bad port in {hostport!r}") from None
    user = parts.username or ""
    password = parts.password or ""
    netloc = f"{user}:***@{hostport}" if password else parts.netloc
    return _Settings(
        dsn=urlunsplit(parts._replace(query=urlencode(rest))),
        redacted=urlunsplit(parts._replace(netloc=netloc)),
        where=f"{hostport}/{parts.path.lstrip('/') or user}",
        user=user,
        password=password,
        pool_max=int(pool_max),
        command_timeout=_number(ours, "command_timeout", 30.0),
        connect_timeout=_number(ours, "connect_timeout", 10.0),
        schema=ours.get("schema") or None,
    )


def _describe(exc: BaseException) -> str:
    """The error without any value it quotes (DETAIL lines, data errors, bad arguments)."""
    name = type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or "?"
        message = str(exc.args[0]) if exc.args else ""
        if state.startswith("22"):  # data exceptions quote the input, asyncpg's own included
            argument = _ARGUMENT.match(message)
            where = f": invalid input for query argument {argument[1]}" if argument else ""
            return f"{name} (SQLSTATE {state}){where}"
        return f"{name} (SQLSTATE {state}): {message}"  # the primary message, no DETAIL
    text = str(exc)
    if "query argument" in text:  # a codec's complaint about an argument may quote it
        return f"{name}: a query argument does not fit its column's type"
    return f"{name}: {text}"


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"postgresql: {_describe(exc)}") from None  # a cause could quote values
    except (OSError, TimeoutError) as exc:
        raise StoreError(f"postgresql: {_describe(exc)}") from exc


def _rowcount(status: str) -> int:
    """Rows changed, from a command tag such as `INSERT 0 3`, `UPDATE 2`, `CREATE TABLE`."""
    verb, _, rest = status.partition(" ")
    if verb not in _COUNTED:
        return 0
    last = rest.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock, from a lock name."""
    digest = hashlib.blake2b(f"interlock.migrate:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _PgStatements:
    """Statements on a pool (autocommit) or on one connection inside a transaction."""

    __slots__ = ("_on", "_state")

    def __init__(self, on: _Target, state: TxState | None = None) -> None:
        self._on = on
        self._state = state

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self._state is not None:
            self._state.check()
        with _mapped():
            return _rowcount(await self._on.execute(numbered(sql), *params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._state is not None:
            self._state.check()
        if not rows:
            return
        with _mapped():
            await self._on.executemany(numbered(sql), rows)  # atomic since asyncpg 0.22

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._state is not None:
            self._state.check()
        with _mapped():
            return [tuple(record) for record in await self._on.fetch(numbered(sql), *params)]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        if self._state is not None:
            self._state.check()
        with _mapped():
            record = await self._on.fetchrow(numbered(sql), *params)
        return None if record is None else tuple(record)


class PostgresStore:
    dialect: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(self, settings: _Settings, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self.url = settings.redacted
        self._timeout = settings.command_timeout  # the password is not kept
        self._pool = pool
        self._direct = _PgStatements(pool)
        self._guard = TaskGuard()
        self._record_table = False

    @classmethod
    async def open(cls, url: str) -> PostgresStore:
        settings = _settings(url)
        try:
            pool = await asyncpg.create_pool(
                settings.dsn,
                min_size=1,
                max_size=settings.pool_max,
                command_timeout=settings.command_timeout,
                timeout=settings.connect_timeout,
                server_settings={"search_path": settings.schema} if settings.schema else None,
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            reason = _describe(exc)
            if settings.password:
                reason = reason.replace(settings.password, "***")
            raise ConfigError(
                f"[store] key `url`: cannot connect to PostgreSQL at {settings.where} "
                f"as {settings.user or '(default user)'}: {reason}"
            ) from None
        return cls(settings, pool)

    # -- autocommit: each call on a pooled connection ----------------------------------
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._guard.check()
        return await self._direct.execute(sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._guard.check()
        await self._direct.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._guard.check()
        return await self._direct.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._guard.check()
        return await self._direct.fetchone(sql, params)

    # -- transactions --------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        with self._guard.inside(), _mapped():
            async with self._pool.acquire() as conn, conn.transaction():
                state = TxState()
                try:
                    yield _PgStatements(conn, state)
                finally:
                    state.open = False

    @asynccontextmanager
    async def _locked(self, name: str) -> AsyncIterator[Tx]:
        """A transaction holding an advisory lock on `name` until it ends."""
        async with self.transaction() as tx:
            await tx.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(name),))
            yield tx

    async def migrate(self, owner: str, migrations: Sequence[Migration]) -> list[int]:
        if not self._record_table:
            await ensure_record_table("postgresql", self._locked)
            self._record_table = True
        return await run(owner, migrations, "postgresql", self, self._locked)

    # -- lifecycle -----------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                value = await self._pool.fetchval("SELECT 1")
        except Exception:
            return False
        return bool(value == 1)

    async def close(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._pool.close()  # waits for connections in use to come back
        except TimeoutError:
            self._pool.terminate()
