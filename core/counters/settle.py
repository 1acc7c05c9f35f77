"""Settling counters off the request path: the settles of many requests in one round trip.

The policy plugins reserve before forwarding (rate-limit tokens, budget USD) and settle
to the real usage afterwards. On `memory://` a settle costs a microsecond and is applied
at once, so the counters are exact as soon as `post_response` returns. On Redis it would
be one more round trip per request and plugin, held in front of the client's last byte;
instead it is queued, and one background task sends everything queued so far in one
`adjust` call (under load, one round trip settles many requests). While a settle waits,
the counter still holds the reservation: a budget is only stricter meanwhile, never
looser, unless the real cost exceeded the worst case estimated.

Nothing is retried: a script whose reply was lost may have run, and applying a release
twice would hand out budget. A failed batch is logged with how many adjustments were
lost (the spend ledger still has every cost; counters are rebuilt from it at start-up).

This module must never block the request path: `settle` only appends on Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from . import Adjustment, CounterError, Counters

__all__ = ["Settler"]

Done = Callable[[list[float]], None]


class Settler:
    """Applies `adjust` batches for one plugin: inline on memory, batched on Redis.

    `done(values)` (optional, per `settle` call) receives the new values of that call's
    keys once applied, in the background task on Redis: a plugin checks thresholds
    there, never on the request path.
    """

    def __init__(
        self,
        counters: Counters,
        spawn: Callable[..., asyncio.Task[Any]],  # Services.spawn(coro, name=...)
        logger: Any,
        *,
        name: str,
        max_batch: int = 1024,
    ) -> None:
        self.counters = counters
        self._spawn = spawn
        self._logger = logger
        self._name = name
        self._max_batch = max_batch
        self.inline = counters.url.startswith("memory://")
        self._queue: list[tuple[Sequence[Adjustment], Done | None]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[Any] | None = None

    async def settle(self, adjustments: Sequence[Adjustment], done: Done | None = None) -> None:
        """Apply `adjustments` (in order): now on memory, soon on Redis."""
        if not adjustments:
            return
        if self.inline:
            try:
                values = await self.counters.adjust(adjustments)
            except CounterError as exc:
                self._lost(exc, len(adjustments))
                return
            self._call(done, values)
            return
        self._queue.append((adjustments, done))
        self._idle.clear()
        if self._task is None:
            self._task = self._spawn(self._run(), name=self._name)
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every settle queued so far has been sent (tests, shutdown)."""
        await self._idle.wait()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within `timeout_s`), then stop the background task."""
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            lost = sum(len(adjustments) for adjustments, _ in self._queue)
            self._logger.error("counter_settle_unsent", settler=self._name, lost=lost)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                groups = self._take()
                flat = [a for adjustments, _ in groups for a in adjustments]
                try:
                    values = await self.counters.adjust(flat)
                except CounterError as exc:
                    self._lost(exc, len(flat))
                    continue
                at = 0
                for adjustments, done in groups:
                    self._call(done, values[at : at + len(adjustments)])
                    at += len(adjustments)
            self._idle.set()

    def _take(self) -> list[tuple[Sequence[Adjustment], Done | None]]:
        """Whole groups from the front of the queue, about `max_batch` adjustments."""
        queue = self._queue
        count = 0
        n = 0
        while n < len(queue) and (n == 0 or count + len(queue[n][0]) <= self._max_batch):
            count += len(queue[n][0])
            n += 1
        groups = queue[:n]
        del queue[:n]
        return groups

    def _call(self, done: Done | None, values: list[float]) -> None:
        if done is None:
            return
        try:
            done(values)
        except Exception as exc:
            self._logger.error(
                "counter_settle_callback_failed", settler=self._name, error=repr(exc)
            )

    def _lost(self, exc: CounterError, count: int) -> None:
        self._logger.error("counter_settle_failed", settler=self._name, lost=count, error=str(exc))
