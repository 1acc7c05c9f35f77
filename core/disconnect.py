"""Noticing that a client went away while its request is being served.

A disconnect must cancel the upstream request (the provider stops generating, and is
not paid for), but a watcher task per request cost ~18 µs of a ~150 µs request. So one
timer (`Sweeper`) starts a request's watcher only once the request has lived 50-100 ms;
a request answered sooner has nothing left to cancel, and a disconnect before then is
not lost: the server queues it and the watcher reads it first thing.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["WATCH_AFTER_S", "Sweeper", "Watch"]


# The disconnect watcher is a task reading `receive`; it starts 50-100 ms after the
# request does, because a task per request cost ~18 µs of a ~150 µs request and a timer
# per request ~5 µs (measured, bench/README.md), while a request answered sooner has
# nothing left to cancel. A disconnect before then is not lost: the server queues it and
# the watcher reads it first thing.
WATCH_AFTER_S = 0.05


class Watch:
    """Shared between a request and its disconnect watcher."""

    __slots__ = ("gone", "receive", "responding", "task", "watcher")

    def __init__(self, receive: Any, task: asyncio.Task[Any]) -> None:
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


class Sweeper:
    """One timer for all requests in flight: every WATCH_AFTER_S it starts the watchers
    of the requests that were already there at the previous tick (two generations), and
    it stops ticking when nothing is in flight."""

    __slots__ = ("armed", "old", "young")

    def __init__(self) -> None:
        self.young: set[Watch] = set()
        self.old: set[Watch] = set()
        self.armed = False

    def add(self, watch: Watch) -> None:
        self.young.add(watch)
        if not self.armed:
            self.armed = True
            asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._tick)

    def remove(self, watch: Watch) -> None:
        self.young.discard(watch)
        self.old.discard(watch)

    def _tick(self) -> None:
        for watch in self.old:
            watch.start()
        self.old, self.young = self.young, set()
        if self.old:
            asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._tick)
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
