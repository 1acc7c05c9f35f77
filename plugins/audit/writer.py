"""Group commit: records from many requests, written by one task in one transaction.

Requests put their record in a bounded queue; the writer task takes what is there (up to
`batch_max`, waiting up to `linger_s` for more when asked to), gives each record its
place in this process's hash chain, and writes the batch with one `executemany` and the
chain head in one transaction. While one batch commits, the next one gathers, so a
busy gateway pays one commit for many requests. A durable request awaits a future the
writer resolves after the commit: when the client has the whole answer, its record is
in the store.

When the store falls behind (the queue is full), nothing is lost by default: a request
waits for room (back-pressure, also for non-durable requests). Only with
`when_full = "drop"` does a non-durable request wait at most `full_wait_s` and then drop
its record, counted and logged. A failing commit is retried with backoff, the same rows
again (their hashes do not change), for as long as it takes; durable requests wait
meanwhile. At shutdown the queue is drained; what cannot be written within the timeout
is counted in an error log line.

Also here: the optional JSONL sink (a batch appended in a worker thread after its
commit, never on the event loop) and retention (records older than `retention_days`
deleted as a prefix of each chain, so no chain gets a hole).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from interlock.core.store import Store

from .record import COLUMNS, GENESIS, JSON_COLUMNS, chain_hash, iso
from .schema import INSERT, INSERT_CHAIN, UPDATE_HEAD

__all__ = ["Writer"]

Content = tuple[Any, ...]
_Item = tuple[Content, "asyncio.Future[None] | None"]
_STOP = None

_encode = msgspec.json.Encoder().encode


class Writer:
    def __init__(
        self,
        store: Store,
        logger: Any,
        *,
        queue_size: int = 10_000,
        batch_max: int = 500,
        linger_s: float = 0.0,
        jsonl: Path | None = None,
        retention_days: float = 0.0,
        retention_every_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.logger = logger
        self.queue: asyncio.Queue[_Item | None] = asyncio.Queue(queue_size)
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.jsonl = jsonl
        self.retention_days = retention_days
        self.retention_every_s = retention_every_s
        self.clock = clock
        # Sortable by start time, unique per process start: 20261125T115900-3f9a1c2b.
        stamp = iso(clock())[:19].replace("-", "").replace(":", "")
        self.chain_id = f"{stamp}-{os.urandom(4).hex()}"
        self.seq = 0
        self.head = GENESIS
        self.written = 0
        self.dropped = 0
        self.commits = 0
        self.failures = 0
        self._next_retention = 0.0
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[_Item] = []
        # While the writer lingers: the future that wakes it, and the queue length at
        # which a producer does so (a full batch, or a full queue).
        self._waiter: asyncio.Future[None] | None = None
        self._wake_at = 0
        self._stopping = False  # close() was called: no more lingering

    # -- the requests' side ------------------------------------------------------------
    async def submit(self, content: Content) -> None:
        """Queue a record and wait until it is committed (durable mode)."""
        self._check_running()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((content, done))
        except asyncio.QueueFull:
            await self.queue.put((content, done))
        if self._waiter is not None:
            self._nudge()
        await done

    async def offer(self, content: Content, *, wait_s: float | None) -> bool:
        """Queue a record without waiting for its commit; when the queue is full, wait for
        room (`wait_s` None: as long as it takes) or drop it after `wait_s`."""
        return self.offer_nowait(content) or await self.offer_when_room(content, wait_s)

    def offer_nowait(self, content: Content) -> bool:
        """`offer` when there is room (False when the queue is full): what nearly every
        request does, without the cost of a coroutine."""
        self._check_running()
        try:
            self.queue.put_nowait((content, None))
        except asyncio.QueueFull:
            return False
        if self._waiter is not None:
            self._nudge()
        return True

    async def offer_when_room(self, content: Content, wait_s: float | None) -> bool:
        """`offer` when the queue is full: wait for room, or drop the record after `wait_s`."""
        try:
            if wait_s is None:
                await self.queue.put((content, None))
            else:
                async with asyncio.timeout(wait_s):
                    await self.queue.put((content, None))
            if self._waiter is not None:
                self._nudge()
            return True
        except TimeoutError:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self.logger.error(
                    "audit_records_dropped", dropped=self.dropped, queue_size=self.queue.maxsize
                )
            return False

    def _nudge(self) -> None:
        """Wake the lingering writer once the queue holds what it waits for."""
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self.queue.qsize() >= self._wake_at:
            waiter.set_result(None)

    def _check_running(self) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("the audit writer is not running")

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self) -> None:
        """Register this process's chain (before the first record)."""
        await self.store.execute(
            INSERT_CHAIN,
            (self.chain_id, iso(self.clock()), socket.gethostname(), os.getpid(), GENESIS, GENESIS),
        )

    def started(self, task: asyncio.Task[None]) -> None:
        self._task = task

    async def close(self, timeout_s: float) -> None:
        """Write what is queued, then stop; after `timeout_s` give up and say how many
        records were not written (their durable requests get an error, not a hang)."""
        task = self._task
        if task is None or task.done():
            return
        try:
            async with asyncio.timeout(timeout_s):
                self._stopping = True  # no lingering once told to stop
                if self._waiter is not None:
                    _wake(self._waiter)
                await self.queue.put(_STOP)
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            lost = self._fail(self._inflight)
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if item is not None:
                    lost += self._fail([item])
            self.logger.error("audit_records_unwritten", records=lost, chain=self.chain_id)
        self.logger.info(
            "audit_chain_closed", chain=self.chain_id, seq=self.seq, hash=self.head,
            written=self.written, dropped=self.dropped,
        )  # fmt: skip

    @staticmethod
    def _fail(items: list[_Item]) -> int:
        for _, done in items:
            if done is not None and not done.done():
                done.set_exception(RuntimeError("the audit record was not written"))
        return len(items)

    # -- the writer task -----------------------------------------------------------------
    async def run(self) -> None:
        await self._retain_when_due()
        while True:
            first = await self.queue.get()
            if first is _STOP:
                return
            batch, stop = await self._gather(first)
            self._inflight = batch
            await self._write(batch)
            self._inflight = []
            if stop:
                return
            await self._retain_when_due()

    async def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
        batch = [first]
        if self.linger_s > 0:
            await self._linger()
        queue = self.queue
        while len(batch) < self.batch_max:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    async def _linger(self) -> None:
        """Wait up to `linger_s` for more records, in one sleep: a producer wakes the
        writer early when the queue holds a full batch or is full (`_nudge`), `close`
        when it is told to stop. (Waking for every record as it arrives cost more CPU
        per record than hashing it.)"""
        queue = self.queue
        wake_at = min(self.batch_max - 1, queue.maxsize)
        if self._stopping or queue.qsize() >= wake_at:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._wake_at = wake_at
        timer = loop.call_later(self.linger_s, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _write(self, batch: list[_Item]) -> None:
        chain_id = self.chain_id
        seq = self.seq
        prev = self.head
        rows: list[tuple[Any, ...]] = []
        for content, _ in batch:
            seq += 1
            digest = chain_hash(prev, chain_id, seq, content)
            rows.append((chain_id, seq, *content, prev, digest))
            prev = digest
        delay = 0.05
        while True:
            try:
                async with self.store.transaction() as tx:
                    await tx.executemany(INSERT, rows)
                    await tx.execute(UPDATE_HEAD, (seq, prev, chain_id))
                break
            except Exception as exc:
                self.failures += 1
                self.logger.error(
                    "audit_write_failed", records=len(rows), error=repr(exc), retry_in_s=delay
                )
                await asyncio.sleep(delay)  # backoff before the same rows are tried again
                delay = min(delay * 2, 2.0)
        self.seq, self.head = seq, prev
        self.written += len(rows)
        self.commits += 1
        for _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)
        if self.jsonl is not None:
            try:
                await asyncio.to_thread(_append_jsonl, self.jsonl, rows)
            except OSError as exc:
                self.logger.error("audit_jsonl_failed", path=str(self.jsonl), error=repr(exc))

    # -- retention -----------------------------------------------------------------------
    async def _retain_when_due(self) -> None:
        if self.retention_days <= 0:
            return
        now = self.clock()
        if now < self._next_retention:
            return
        self._next_retention = now + self.retention_every_s
        try:
            deleted = await retain(self.store, iso(now - self.retention_days * 86400.0))
        except Exception as exc:
            self.logger.error("audit_retention_failed", error=repr(exc))
            return
        if deleted:
            self.logger.info("audit_retention", deleted=deleted, days=self.retention_days)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def retain(store: Store, cutoff: str) -> int:
    """Delete each chain's records before its first one at or after `cutoff` (a prefix,
    so no chain gets a hole) and move the chain's recorded start forward with them."""
    deleted = 0
    chains = await store.fetchall("SELECT chain_id FROM audit_chains")
    for (chain_id,) in chains:
        async with store.transaction() as tx:
            row = await tx.fetchone(
                "SELECT first_seq, last_seq FROM audit_chains WHERE chain_id = ?", (chain_id,)
            )
            if row is None:
                continue
            first_seq, last_seq = row
            kept = await tx.fetchone(
                "SELECT MIN(seq) FROM audit_log WHERE chain_id = ? AND ts >= ?",
                (chain_id, cutoff),
            )
            keep_from = kept[0] if kept is not None and kept[0] is not None else last_seq + 1
            if keep_from <= first_seq:
                continue
            link = await tx.fetchone(
                "SELECT hash FROM audit_log WHERE chain_id = ? AND seq = ?",
                (chain_id, keep_from - 1),
            )
            if link is None:
                continue  # a hole already: leave it for `verify` to report
            deleted += await tx.execute(
                "DELETE FROM audit_log WHERE chain_id = ? AND seq < ?", (chain_id, keep_from)
            )
            await tx.execute(
                "UPDATE audit_chains SET first_seq = ?, first_prev = ? WHERE chain_id = ?",
                (keep_from, link[0], chain_id),
            )
    return deleted


def as_document(row: Sequence[Any]) -> dict[str, Any]:
    """A stored row as a JSON-ready mapping (JSON columns embedded, not quoted)."""
    return {
        column: msgspec.Raw(value.encode()) if column in JSON_COLUMNS and value else value
        for column, value in zip(COLUMNS, row, strict=True)
    }


def _append_jsonl(path: Path, rows: list[tuple[Any, ...]]) -> None:
    lines = b"".join(_encode(as_document(row)) + b"\n" for row in rows)
    with path.open("ab") as f:
        f.write(lines)
