"""Shared fixtures. Services (Redis, PostgreSQL) are real: a test marked `services`
skips when they are down, and CI (INTERLOCK_REQUIRE_SERVICES=1) turns a skip into a
failure so a green run always means they were tested."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from tests import hooks_run
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


# -- which hooks the tests really ran (tests/hooks_run.py, checked in tests/test_docs.py) --
_HOOKS_PATCH = pytest.MonkeyPatch()
LAST = "tests/test_docs.py::test_every_hook_ran_in_test_hooks"


def pytest_configure(config: pytest.Config) -> None:
    hooks_run.install(_HOOKS_PATCH)


def pytest_unconfigure(config: pytest.Config) -> None:
    _HOOKS_PATCH.undo()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    hooks_run.running(item.path)
    try:
        return (yield)
    finally:
        hooks_run.running(None)


def pytest_deselected(items: list[pytest.Item]) -> None:
    hooks_run.DESELECTED.extend(item.nodeid for item in items)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The check of which hooks ran goes last, after every test that could run them."""
    last = [item for item in items if item.nodeid == LAST]
    items[:] = [item for item in items if item.nodeid != LAST] + last


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
