"""The group-commit writer on a real SQLite store: batching, durable waits, back-pressure
and drops when the queue is full, retries when the store fails, shutdown, retention."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from interlock.core.store import Store, StoreError, Tx, open_store
from interlock.plugins.audit.query import verify
from interlock.plugins.audit.record import CONTENT, iso
from interlock.plugins.audit.schema import MIGRATIONS
from interlock.plugins.audit.writer import Writer, retain


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))

    error = info


class GatedStore:
    """A store whose transactions wait for `gate` (and say when one is waiting), and
    fail while `failures` is positive, as a store that is down."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Tx]:
        self.waiting.set()
        await self.gate.wait()
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("sqlite: OperationalError: disk I/O error")
        async with self.store.transaction() as tx:
            yield tx

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        return self._tx()


def content(i: int, ts: str = "2026-11-25T00:00:00.000000Z") -> tuple[Any, ...]:
    values: dict[str, Any] = {c: None for c in CONTENT}
    values.update(
        ts=ts, request_id=f"r{i}", tags="{}", method="POST", path="/v1/chat/completions",
        inbound="openai", endpoint="chat", stream=0, attempts="[]", status=200,
        prompt_tokens=i, completion_tokens=0, cached_tokens=0, cache_write_tokens=0,
        usage_estimated=0, cost_usd=0.5, latency_ms=1.25, redactions="{}",
    )  # fmt: skip
    return tuple(values[c] for c in CONTENT)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[GatedStore]:
    real = await open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    await real.migrate("audit", MIGRATIONS)
    yield GatedStore(real)
    await real.close()


@contextlib.asynccontextmanager
async def running(writer: Writer) -> AsyncIterator[Writer]:
    await writer.open()
    writer.started(asyncio.ensure_future(writer.run()))
    try:
        yield writer
    finally:
        await writer.close(5.0)


async def count(store: GatedStore) -> int:
    row = await store.store.fetchone("SELECT COUNT(*) FROM audit_log")
    assert row is not None
    return int(row[0])


async def test_concurrent_records_share_one_commit(store: GatedStore) -> None:
    async with running(Writer(store, Log())) as writer:  # type: ignore[arg-type]
        await asyncio.gather(*(writer.submit(content(i)) for i in range(200)))
        assert (writer.written, writer.commits) == (200, 1)
    async with running(Writer(store, Log(), batch_max=50)) as writer:  # type: ignore[arg-type]
        await asyncio.gather(*(writer.submit(content(i)) for i in range(200)))
        assert (writer.written, writer.commits) == (200, 4)
    assert await count(store) == 400
    assert (await verify(store.store)).broken is None  # two chains, both whole


async def test_a_durable_submit_returns_only_after_its_commit(store: GatedStore) -> None:
    async with running(Writer(store, Log())) as writer:  # type: ignore[arg-type]
        store.gate.clear()
        store.waiting.clear()
        durable = asyncio.ensure_future(writer.submit(content(1)))
        await store.waiting.wait()  # the writer has the record and waits for the store
        assert not durable.done()
        assert await count(store) == 0
        store.gate.set()
        await durable
        assert await count(store) == 1


async def test_a_non_durable_offer_does_not_wait_for_the_commit(store: GatedStore) -> None:
    async with running(Writer(store, Log())) as writer:  # type: ignore[arg-type]
        store.gate.clear()
        assert await writer.offer(content(1), wait_s=None)
        await store.waiting.wait()
        assert await count(store) == 0
        store.gate.set()
    assert await count(store) == 1  # written by close()


async def test_a_full_queue_makes_requests_wait_by_default(store: GatedStore) -> None:
    async with running(Writer(store, Log(), queue_size=1)) as writer:  # type: ignore[arg-type]
        store.gate.clear()
        first = asyncio.ensure_future(writer.offer(content(1), wait_s=None))
        await store.waiting.wait()  # the writer holds record 1, waiting for the store
        assert await writer.offer(content(2), wait_s=None)  # fills the queue
        third = asyncio.ensure_future(writer.offer(content(3), wait_s=None))
        await asyncio.sleep(0)  # let it run to its wait for room
        assert not third.done()
        store.gate.set()
        assert await first and await third
    assert await count(store) == 3
    assert writer.dropped == 0


async def test_drop_mode_counts_and_logs_what_it_drops(store: GatedStore) -> None:
    log = Log()
    async with running(Writer(store, log, queue_size=1)) as writer:  # type: ignore[arg-type]
        store.gate.clear()
        await writer.offer(content(1), wait_s=0)
        await store.waiting.wait()
        assert await writer.offer(content(2), wait_s=0)
        assert not await writer.offer(content(3), wait_s=0)
        store.gate.set()
    assert writer.dropped == 1
    assert ("audit_records_dropped", {"dropped": 1, "queue_size": 1}) in log.lines
    assert await count(store) == 2


async def test_a_failing_store_is_retried_with_the_same_rows(store: GatedStore) -> None:
    log = Log()
    store.failures = 2
    async with running(Writer(store, log)) as writer:  # type: ignore[arg-type]
        await asyncio.gather(*(writer.submit(content(i)) for i in range(5)))
        await writer.submit(content(5))
    assert writer.failures == 2
    assert [e for e, _ in log.lines].count("audit_write_failed") == 2
    assert await count(store) == 6
    result = await verify(store.store)
    assert result.broken is None and result.records == 6


async def test_shutdown_gives_up_on_a_dead_store_and_says_how_much(store: GatedStore) -> None:
    log = Log()
    writer = Writer(store, log)  # type: ignore[arg-type]
    await writer.open()
    writer.started(asyncio.ensure_future(writer.run()))
    store.gate.clear()
    first = asyncio.ensure_future(writer.submit(content(1)))
    await store.waiting.wait()
    queued = asyncio.ensure_future(writer.submit(content(2)))
    await asyncio.sleep(0)
    await writer.close(0.01)
    assert ("audit_records_unwritten", {"records": 2, "chain": writer.chain_id}) in log.lines
    for request in (first, queued):  # an error for their post_response, never a hang
        with pytest.raises(RuntimeError, match="not written"):
            await request
    with pytest.raises(RuntimeError, match="not running"):
        await writer.submit(content(3))


async def test_retention_deletes_a_prefix_of_each_chain(store: GatedStore) -> None:
    old, new = "2026-01-01T00:00:00.000000Z", "2026-11-01T00:00:00.000000Z"
    async with running(Writer(store, Log())) as writer:  # type: ignore[arg-type]
        for i, ts in enumerate([old, old, new, old, new]):
            await writer.submit(content(i, ts))
    deleted = await retain(store.store, "2026-06-01T00:00:00.000000Z")
    assert deleted == 2  # records 1 and 2; record 4 is old but follows a kept one
    left = await store.store.fetchall("SELECT seq FROM audit_log ORDER BY seq")
    assert [s for (s,) in left] == [3, 4, 5]
    first = await store.store.fetchone("SELECT first_seq FROM audit_chains")
    assert first == (3,)
    assert (await verify(store.store)).broken is None
    assert await retain(store.store, "2026-06-01T00:00:00.000000Z") == 0


async def test_the_writer_applies_retention_on_its_own_clock(store: GatedStore) -> None:
    now = [1_800_000_000.0]
    writer = Writer(store, Log(), retention_days=30, clock=lambda: now[0])  # type: ignore[arg-type]
    async with running(writer):
        await writer.submit(content(1, iso(now[0] - 40 * 86400)))
        await writer.submit(content(2, iso(now[0] - 40 * 86400)))
        now[0] += 3600  # the next sweep is due
        await writer.submit(content(3, iso(now[0])))
        await writer.submit(content(4, iso(now[0])))  # runs after the sweep that followed 3
    assert [s for (s,) in await store.store.fetchall("SELECT seq FROM audit_log")] == [3, 4]


async def test_a_lingering_writer_commits_as_soon_as_a_batch_is_full(store: GatedStore) -> None:
    """The writer sleeps through its linger in one wait; the record that completes a
    batch wakes it (a 60 s linger would outlast the test's timeout otherwise)."""
    writer = Writer(store, Log(), batch_max=10, linger_s=60.0)  # type: ignore[arg-type]
    async with running(writer):
        async with asyncio.timeout(5):
            await asyncio.gather(*(writer.submit(content(i)) for i in range(20)))
        assert (writer.written, writer.commits) == (20, 2)  # two full batches
        for i in range(20, 25):
            assert await writer.offer(content(i), wait_s=None)
        assert writer.written == 20  # these 5 linger
    assert (writer.written, writer.commits) == (25, 3)  # written by close()


async def test_a_lingering_writer_wakes_when_the_queue_is_full(store: GatedStore) -> None:
    """A queue smaller than a batch: the producer that fills it wakes the writer, so
    requests waiting for room do not wait out the linger."""
    writer = Writer(store, Log(), queue_size=3, linger_s=60.0)  # type: ignore[arg-type]
    async with running(writer):
        async with asyncio.timeout(5):
            for i in range(10):
                assert await writer.offer(content(i), wait_s=None)
            await asyncio.gather(*(writer.submit(content(i)) for i in range(10, 16)))
    assert writer.written == 16 and writer.dropped == 0


async def test_close_does_not_wait_out_the_linger(store: GatedStore) -> None:
    log = Log()
    writer = Writer(store, log, linger_s=60.0)  # type: ignore[arg-type]
    async with running(writer):
        assert await writer.offer(content(1), wait_s=None)
        await asyncio.sleep(0.01)  # the writer has the record and lingers
    assert writer.written == 1
    assert not [event for event, _ in log.lines if event == "audit_records_unwritten"]
