"""A local-file plugin for tests: records each request's usage and cost in post_response.

Loaded by the gateway with `[plugins.recorder] path = "..."`, so it runs as its own
module (`interlock_local_plugin_recorder`); tests read it through `recorder()` below.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from interlock.core import hookimpl


class Recorder:
    name = "recorder"

    def __init__(self, settings: Any, services: Any) -> None:
        self.records: list[Any] = []
        self.arrived = asyncio.Event()
        sys.modules[__name__].INSTANCE = self  # type: ignore[attr-defined]

    @hookimpl
    def post_response(self, ctx: Any) -> None:
        self.records.append((ctx.usage, ctx.cost_usd, ctx.model, ctx.status))
        self.arrived.set()
