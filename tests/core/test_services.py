"""What a plugin receives: `Services`, complete before the plugin is made, and a spawner
for background work that the gateway owns and stops at shutdown."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support import GUARD, local_plugin, run_gateway

MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["m"]\n'
SEEN: list[Any] = []  # what the plugins below record; cleared per test
EVENTS: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
PRELUDE = "from tests.core.test_services import SEEN, EVENTS\n"


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()
    EVENTS.clear()


INSPECTOR = """
def __init__(self, config, services):
    super().__init__(config, services)
    SEEN.append(("store", services.store is not None))
    SEEN.append(("counters", services.counters is not None))
    SEEN.append(("config, pricing, logger", None not in (services.config, services.pricing, services.logger)))
    SEEN.append(("providers", sorted(services.providers)))
    try:
        services.providers["intruder"] = services.providers["mock"]
    except TypeError:
        SEEN.append(("providers read-only", True))
    try:
        del services.providers["mock"]
    except TypeError:
        SEEN.append(("providers undeletable", True))

@hookimpl
async def startup(self, services):
    SEEN.append(("same services", services is self.services))
    SEEN.append(("store open", await services.store.ping()))
"""


async def test_services_are_complete_when_a_plugin_is_made(tmp_path: Path) -> None:
    toml = MOCK + local_plugin(tmp_path, "inspector", INSPECTOR, PRELUDE)
    async with run_gateway(toml, tmp_path):
        pass
    assert SEEN == [
        ("store", True),
        ("counters", True),
        ("config, pricing, logger", True),
        ("providers", ["mock"]),
        ("providers read-only", True),
        ("providers undeletable", True),
        ("same services", True),
        ("store open", True),
    ]


SPAWNER = """
@hookimpl
def startup(self, services):
    async def forever():
        SEEN.append("forever:running")
        EVENTS["running"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            SEEN.append("forever:cancelled")
            raise

    async def crash():
        EVENTS["crashing"].set()
        raise RuntimeError("the webhook endpoint is gone")

    self.tasks = [services.spawn(forever(), name="forever"), services.spawn(crash(), name="crasher")]

@hookimpl
def shutdown(self, services):
    SEEN.append("shutdown hook")
"""


async def test_spawned_tasks_run_crashes_are_logged_and_the_rest_stop_at_shutdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = MOCK + local_plugin(tmp_path, "spawner", SPAWNER, PRELUDE)
    async with run_gateway(toml, tmp_path):
        await asyncio.wait_for(EVENTS["running"].wait(), GUARD)
        await asyncio.wait_for(EVENTS["crashing"].wait(), GUARD)
    # The plugin's own shutdown runs first (to flush and stop its work cleanly), then
    # whatever is still running is cancelled and awaited before the gateway has stopped.
    assert SEEN == ["forever:running", "shutdown hook", "forever:cancelled"]
    lines = [msgspec.json.decode(x) for x in capsys.readouterr().out.splitlines() if x[:1] == "{"]
    [failed] = [line for line in lines if line["event"] == "background_task_failed"]
    assert failed["task"] == "crasher"
    assert "the webhook endpoint is gone" in failed["error"]
    stopped = [line["event"] for line in lines].index("stopped")
    assert [line["event"] for line in lines].index("background_task_failed") < stopped
