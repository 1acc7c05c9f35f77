"""Graceful shutdown: the process-wide drain that begins when the server is told to stop.

On SIGTERM or SIGINT the serve path (core/serving.py) stops accepting connections and
calls `DRAIN.begin(timeout)` in the event loop's thread. Requests in flight then have
`timeout` seconds ([server] shutdown_timeout_s) to finish. When that passes, every stream
still open is cancelled from here and ends with an error event in the caller's own format
(the streaming loop runs inside `DRAIN.bounded()`, which turns that cancellation into
`ShuttingDown`), so a client never mistakes a cut stream for a finished one. Requests
that are not streams are left to the server, which stops waiting for them `GRACE_S`
later.

This module never touches signals or servers, and costs nothing per chunk: a stream is
one set insertion and one removal.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from .errors import GatewayError

__all__ = ["DRAIN", "GRACE_S", "Drain", "ShuttingDown"]

# How long the server waits after the drain deadline before it cancels what is left:
# long enough for the open streams to write their error event and close.
GRACE_S = 1.0


class ShuttingDown(GatewayError):
    def __init__(self) -> None:
        super().__init__(503, "shutting_down", "the gateway is shutting down; retry the request")


class Drain:
    """Whether shutdown has begun, and the streams to cut when its deadline passes."""

    __slots__ = ("_cut", "_open", "_timer", "draining", "expired")

    def __init__(self) -> None:
        self.draining = False
        self.expired = False
        self._open: set[asyncio.Task[object]] = set()
        self._cut: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, timeout_s: float) -> None:
        """Start draining; the deadline is `timeout_s` from now. Call it in the event
        loop's thread; a second call (the same signal delivered twice) changes nothing."""
        if self.draining:
            return
        self.draining = True
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, timeout_s), self.expire)

    def expire(self) -> None:
        """The deadline: cancel every stream still open (each ends with an error event)."""
        self.expired = True
        for task in self._open:
            self._cut.add(task)
            task.cancel()

    def bounded(self) -> Bounded:
        """`with DRAIN.bounded():` around a streaming loop ends it with `ShuttingDown`
        when the drain deadline passes (at once, if it already has)."""
        return Bounded(self)

    def reset(self) -> None:
        """Back to serving (tests run many gateways in one process)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.draining = self.expired = False
        self._open.clear()
        self._cut.clear()


class Bounded:
    __slots__ = ("drain", "task")

    def __init__(self, drain: Drain) -> None:
        self.drain = drain
        self.task: asyncio.Task[object] | None = None

    def __enter__(self) -> None:
        drain = self.drain
        if drain.expired:
            raise ShuttingDown()
        self.task = asyncio.current_task()
        if self.task is not None:
            drain._open.add(self.task)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self.task
        if task is None:
            return
        drain = self.drain
        drain._open.discard(task)
        if drain._cut and task in drain._cut:
            drain._cut.discard(task)
            if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
                task.uncancel()
                raise ShuttingDown() from None


DRAIN = Drain()
