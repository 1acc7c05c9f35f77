"""Settling counters after a response: the settles of concurrent requests in one call.

The policy plugins reserve before forwarding (rate-limit tokens, budget USD) and settle
to the real usage in `post_response`, which the core runs before the client receives
the last byte, so a client that sends its next request after an answer (or after a
failure that released its reservation) always finds the counters settled.

On `memory://` a settle costs a microsecond and is applied at once (`settle_now`, a
plain call, when the counters are exactly `MemoryCounters`). On Redis each would
be a round trip of its own; instead, settles go into a queue that one background task
sends as one `adjust` call (one Lua script) while the requests that queued them wait:
the first settle is sent at once, and every settle that arrives while a call is in
flight goes in the next one (group commit). Under load one round trip settles many
requests; alone, a request pays one round trip, as it would anyway.

Nothing is retried: a script whose reply was lost may have run, and applying a release
twice would hand out budget. A failed batch is logged with how many adjustments were
lost (the spend ledger still has every cost; counters are rebuilt from it at start-up),
and its requests go on: a settle never fails a response that was already given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from . import Adjustment, CounterError, Counters
from .memory import MemoryCounters, in_process

__all__ = ["Settler"]

_Waiting = tuple[Sequence[Adjustment], "asyncio.Future[list[float] | None]"]


class Settler:
    """Applies `adjust` calls for one plugin: inline on memory, grouped on Redis."""

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
        # Exactly MemoryCounters: `settle_now` applies settles without a coroutine.
        self.memory: MemoryCounters | None = in_process(counters)
        self._queue: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[Any] | None = None
        self.calls = 0  # adjust calls made (one round trip each on Redis)

    async def settle(self, adjustments: Sequence[Adjustment]) -> list[float] | None:
        """Apply `adjustments` in order; each key's new value, or None when the
        counters could not answer (logged)."""
        if not adjustments:
            return []
        if self.inline:
            self.calls += 1
            try:
                return await self.counters.adjust(adjustments)
            except CounterError as exc:
                self._lost(exc, len(adjustments))
                return None
        waiting: asyncio.Future[list[float] | None] = asyncio.get_running_loop().create_future()
        self._queue.append((adjustments, waiting))
        self._idle.clear()
        if self._task is None:
            self._task = self._spawn(self._run(), name=self._name)
        self._wake.set()
        return await asyncio.shield(waiting)  # a cancelled request leaves the batch intact

    def settle_now(self, adjustments: Sequence[Adjustment]) -> list[float] | None:
        """`settle` as a plain call, when `self.memory` is set (in-process counters: a
        settle is applied at once, so there is nothing to wait for)."""
        memory = self.memory
        assert memory is not None, "settle_now needs in-process counters"
        if not adjustments:
            return []
        self.calls += 1
        try:
            return memory.adjust_now(adjustments)
        except CounterError as exc:
            self._lost(exc, len(adjustments))
            return None

    async def flush(self) -> None:
        """Wait until every settle queued so far has been sent."""
        await self._idle.wait()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within `timeout_s`), then stop the background task."""
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: 3.11's can lose a cancel
                await self.flush()
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
                self.calls += 1
                try:
                    values: list[float] | None = await self.counters.adjust(flat)
                except Exception as exc:  # CounterError; anything else must not hang requests
                    self._lost(exc, len(flat))
                    values = None
                at = 0
                for adjustments, waiting in groups:
                    if not waiting.done():
                        waiting.set_result(
                            None if values is None else values[at : at + len(adjustments)]
                        )
                    at += len(adjustments)
            self._idle.set()

    def _take(self) -> list[_Waiting]:
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

    def _lost(self, exc: Exception, count: int) -> None:
        error = str(exc) if isinstance(exc, CounterError) else repr(exc)
        self._logger.error("counter_settle_failed", settler=self._name, lost=count, error=error)
