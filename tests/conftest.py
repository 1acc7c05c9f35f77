"""Shared fixtures. Services (Redis, PostgreSQL) are real: a test marked `services`
skips when they are down, and CI (INTERLOCK_REQUIRE_SERVICES=1) turns a skip into a
failure so a green run always means they were tested."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import FakeUpstream, fake_upstream


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    async with fake_upstream() as pair:
        yield pair


# Every upstream client behind the forwarder passes the same tests.
CLIENTS = ["httpx", "httpx-aiohttp", "aiohttp"]


@pytest.fixture(params=CLIENTS)
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as c:
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if (
        os.environ.get("INTERLOCK_REQUIRE_SERVICES") == "1"
        and report.skipped
        and item.get_closest_marker("services") is not None
    ):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: needs Redis/PostgreSQL, which were not reachable"
