"""Fixtures of the policy plugin tests: the two deployments, a unique tenant whose Redis
keys are removed afterwards, a PostgreSQL schema per test."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.core import test_store
from tests.plugins.policy import REDIS_URL, Deployment

pg_url = test_store.pg_url  # a fresh PostgreSQL schema, dropped afterwards


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    if request.param == "memory":
        return Deployment("memory", "memory://", f"sqlite:///{tmp_path}/gateway.db", 1)
    with socket.socket() as probe:  # the Redis tests skip (and CI fails) when it is down
        probe.settimeout(2.0)
        if probe.connect_ex(("127.0.0.1", 6379)) != 0:
            pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return Deployment("redis", REDIS_URL, str(request.getfixturevalue("pg_url")), 2)


@pytest.fixture
async def tenant() -> AsyncIterator[str]:
    """A tenant name no other test uses; its counters in Redis are dropped afterwards."""
    name = f"team-{uuid.uuid4().hex[:12]}"
    yield name
    await drop_tenant_keys(name)


async def drop_tenant_keys(name: str) -> None:
    raw = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in raw.scan_iter(match=f"interlock:*{name}*")]
        if keys:
            await raw.delete(*keys)
    except (RedisError, OSError):
        pass  # no Redis: nothing was written there
    finally:
        await raw.aclose()
