"""The spend ledger: one row per request that cost something, written off the request
path, and read back at start-up to rebuild the budget counters.

`post_response` only appends a row to a list (`LedgerWriter.add`); one background task,
lingering `linger_s` (50 ms) after the first row so requests gather, writes them in one
transaction (group commit: one commit carries many requests), so a slow or locked
database never delays a client and a busy gateway commits about 20 times a second. A failed
write is retried with a growing pause, the rows kept in order; past `max_pending` rows
new ones are dropped and counted in an error log line (the counters still hold them).
Rows carry names and numbers only: never a key, never prompt text.

The ledger is the source of truth for what was spent: counters are derived from it
(`spend_in`), in any period, since rows carry their time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from interlock.core.store import Migration, Store, StoreError

__all__ = ["MIGRATIONS", "LedgerRow", "LedgerWriter", "spend_in"]


def _ledger_table(id_column: str) -> str:
    """The ledger's CREATE TABLE; the dialects differ only in the row id's type."""
    return f"""CREATE TABLE spend_ledger (
                id {id_column},
                request_id TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                period TEXT NOT NULL,
                tenant TEXT NOT NULL,
                key_id TEXT,
                feature TEXT,
                requested_model TEXT,
                model TEXT,
                cost_usd DOUBLE PRECISION NOT NULL,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                estimated INTEGER NOT NULL,
                status INTEGER NOT NULL
            )"""


_LEDGER_TS_INDEX = "CREATE INDEX spend_ledger_ts ON spend_ledger (ts)"

MIGRATIONS = (
    Migration(
        1,
        sql=(_ledger_table("INTEGER PRIMARY KEY"), _LEDGER_TS_INDEX),
        postgresql=(_ledger_table("BIGSERIAL PRIMARY KEY"), _LEDGER_TS_INDEX),
    ),
)

# request_id, ts (the request's start, Unix time), period id, tenant, key_id, feature,
# requested_model, model, cost_usd, prompt_tokens, completion_tokens, estimated (0/1),
# status
LedgerRow = tuple[
    str, float, str, str, str | None, str | None, str | None, str | None, float, int, int, int, int
]

_INSERT = (
    "INSERT INTO spend_ledger (request_id, ts, period, tenant, key_id, feature, "
    "requested_model, model, cost_usd, prompt_tokens, completion_tokens, estimated, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_SPEND = (
    "SELECT tenant, key_id, feature, requested_model, SUM(cost_usd) FROM spend_ledger "
    "WHERE ts >= ? AND ts < ? GROUP BY tenant, key_id, feature, requested_model"
)


async def spend_in(
    store: Store, start: float, end: float
) -> list[tuple[str, str | None, str | None, str | None, float]]:
    """What was spent in [start, end): one row per tenant, key, feature and model."""
    rows = await store.fetchall(_SPEND, (start, end))
    return [(r[0], r[1], r[2], r[3], float(r[4] or 0.0)) for r in rows]


class LedgerWriter:
    """Appends rows from the request path; one background task commits them in groups."""

    def __init__(
        self,
        store: Store,
        spawn: Callable[..., asyncio.Task[Any]],
        logger: Any,
        *,
        max_batch: int = 1000,
        max_pending: int = 100_000,
        retry_s: float = 0.5,
        linger_s: float = 0.05,
    ) -> None:
        self.store = store
        self._spawn = spawn
        self._logger = logger
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._retry_s = retry_s
        self._linger_s = linger_s
        self._rows: list[LedgerRow] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._hurry = asyncio.Event()  # flush() and a full batch cut the linger short
        self._task: asyncio.Task[Any] | None = None
        self.dropped = 0

    def add(self, row: LedgerRow) -> None:
        """Queue one row (never awaits, never touches the database)."""
        if len(self._rows) >= self._max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self._logger.error("spend_ledger_full", dropped=self.dropped)
            return
        self._rows.append(row)
        if len(self._rows) >= self._max_batch:
            self._hurry.set()
        self._idle.clear()
        if self._task is None:
            self._task = self._spawn(self._run(), name="budget-ledger")
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every row queued so far is committed."""
        self._hurry.set()
        await self._idle.wait()

    async def close(self, timeout_s: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: 3.11's can lose a cancel
                await self.flush()
        except TimeoutError:
            self._logger.error("spend_ledger_unwritten", rows=len(self._rows))
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        pause = self._retry_s
        while True:
            await self._wake.wait()
            if self._linger_s and not self._hurry.is_set():
                # Let requests gather: one commit then carries all of them.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger_s):
                        await self._hurry.wait()
            self._wake.clear()
            while self._rows:
                batch = self._rows[: self._max_batch]
                try:
                    async with self.store.transaction() as tx:
                        await tx.executemany(_INSERT, batch)
                except Exception as exc:  # StoreError, or a dropped connection: keep the rows
                    self._logger.error(
                        "spend_ledger_write_failed", rows=len(batch), error=_reason(exc)
                    )
                    await asyncio.sleep(pause)  # background only: the store needs time
                    pause = min(pause * 2, 30.0)
                    continue
                pause = self._retry_s
                del self._rows[: len(batch)]
                if len(self._rows) < self._max_batch and not self._hurry.is_set():
                    # Rows that came during the commit linger for more, like the first
                    # did: under steady load, commits back to back would carry a few
                    # rows each (add() set _wake for them).
                    break
            if not self._rows:
                self._idle.set()
                self._hurry.clear()


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, StoreError) else type(exc).__name__
