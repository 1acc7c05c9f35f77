"""Refuse the two ways a transaction goes wrong silently: the store used inside it, and
its `Tx` used after it ended.

Calling `store.execute` inside `store.transaction()` would, on SQLite, wait forever for
the lock its own task holds, and on PostgreSQL run outside the transaction on another
connection. Both stores refuse it with a StoreError instead. The check is by task, so a
task started inside a transaction and still running after it is never refused wrongly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import StoreError

__all__ = ["TaskGuard", "TxState"]


class TaskGuard:
    """The tasks that are inside one of this store's transactions right now."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def check(self) -> None:
        """Called by each autocommit call (and on entering a transaction)."""
        if self._tasks and asyncio.current_task() in self._tasks:
            raise StoreError(
                "the store was called inside its own transaction: use the transaction's "
                "`tx` (transactions do not nest)"
            )

    @contextmanager
    def inside(self) -> Iterator[None]:
        self.check()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a coroutine always runs in a task here
            yield
            return
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)


class TxState:
    """Whether a transaction's `Tx` may still be used."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True

    def check(self) -> None:
        if not self.open:
            raise StoreError("this transaction has ended: its `tx` cannot be used any more")
