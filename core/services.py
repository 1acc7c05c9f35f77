"""The shared things a plugin receives when it is made: config, pricing, logger, the open
store, counters, the providers, and a spawner for background work.

Built once per process in the app's lifespan, complete before the first plugin is
constructed, so a plugin may keep references from its `__init__`; nothing here is
created per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config
    from .counters import Counters
    from .pricing import Pricing
    from .providers.base import Provider
    from .store import Store

__all__ = ["Services"]


class Services:
    """What plugins share. `providers` is read-only; `spawn` runs background work the
    lifespan owns: it is cancelled and awaited at shutdown, after the plugins' own
    `shutdown` hooks (which should flush and stop their tasks cleanly first)."""

    def __init__(
        self,
        config: Config,
        pricing: Pricing,
        logger: Any,
        store: Store,
        counters: Counters,
        providers: Mapping[str, Provider],
    ) -> None:
        self.config = config
        self.pricing = pricing
        self.logger = logger
        self.store = store
        self.counters = counters
        self.providers = providers
        self.secrets: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start background work (a writer, a webhook sender) owned by the gateway: it is
        kept alive, its crash is logged with `name`, and it is stopped at shutdown."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.error(
                "background_task_failed", task=task.get_name(), error=repr(task.exception())
            )

    async def stop_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
