"""Noticing that a client went away, or a request's deadline passed, while it is served.

A disconnect must cancel the upstream request (the provider stops generating, and is
not paid for), but a watcher task per request cost ~18 µs of a ~150 µs request. So one
timer (`Sweeper`) starts a request's watcher only once the request has lived 50-100 ms;
a request answered sooner has nothing left to cancel, and a disconnect before then is
not lost: the server queues it and the watcher reads it first thing.

The same timer enforces each request's one deadline (`ctx.deadline`, across all its
attempts): a request still waiting on an upstream attempt when its deadline passes is
cancelled with `ctx.expired` set, which the pipeline turns into a 504. A timer per
request (`asyncio.timeout`) cost ~4 µs of a ~28 µs request in process; the tick costs
nothing per request and is precise to WATCH_AFTER_S, ample for deadlines in seconds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import RequestContext

__all__ = ["WATCH_AFTER_S", "Sweeper", "Watch"]


# The disconnect watcher is a task reading `receive`; it starts 50-100 ms after the
# request does, because a task per request cost ~18 µs of a ~150 µs request and a timer
# per request ~5 µs (measured, bench/README.md), while a request answered sooner has
# nothing left to cancel. A disconnect before then is not lost: the server queues it and
# the watcher reads it first thing.
WATCH_AFTER_S = 0.05


class Watch:
    """Shared between a request and its disconnect watcher."""

    __slots__ = ("ctx", "gone", "receive", "responding", "task", "watcher")

    def __init__(self, receive: Any, task: asyncio.Task[Any], ctx: RequestContext) -> None:
        self.ctx = ctx
        self.responding = True
        self.gone = False
        self.receive = receive
        self.task = task
        self.watcher: asyncio.Future[None] | None = None

    def start(self) -> None:
        if self.responding:
            self.watcher = asyncio.ensure_future(_watch_disconnect(self.receive, self.task, self))

    def stop(self) -> None:
        self.responding = False
        if self.watcher is not None:
            self.watcher.cancel()

    def expire(self, now: float) -> None:
        """Cancel the request if its deadline passed while it waits on an upstream."""
        ctx = self.ctx
        if ctx.attempting and now >= ctx.deadline and self.responding and not ctx.expired:
            ctx.expired = True
            self.task.cancel()


class Sweeper:
    """One timer for all requests in flight: every WATCH_AFTER_S it starts the watchers
    of the requests that were already there at the previous tick (two generations),
    checks every request's deadline, and stops ticking when nothing is in flight."""

    __slots__ = ("armed", "live", "old", "young")

    def __init__(self) -> None:
        self.young: set[Watch] = set()
        self.old: set[Watch] = set()
        self.live: set[Watch] = set()  # watcher started, still in flight
        self.armed = False

    def add(self, watch: Watch) -> None:
        self.young.add(watch)
        if not self.armed:
            self.armed = True
            asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._tick)

    def remove(self, watch: Watch) -> None:
        self.young.discard(watch)
        self.old.discard(watch)
        self.live.discard(watch)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for watch in self.old:
            watch.start()
            self.live.add(watch)
        self.old, self.young = self.young, set()
        for generation in (self.old, self.live):
            for watch in list(generation):
                watch.expire(now)
        if self.old or self.live:
            loop.call_later(WATCH_AFTER_S, self._tick)
        else:
            self.armed = False


async def _watch_disconnect(receive: Any, task: asyncio.Task[Any], watch: Watch) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            watch.gone = True
            if watch.responding:
                task.cancel()
            return
