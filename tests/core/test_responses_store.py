"""The conversations the gateway keeps for translated `/v1/responses`, on SQLite and
PostgreSQL: chains read oldest first in one query, per tenant, expiry, deletion, and a
hole in a chain is a 404 rather than half a conversation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from interlock.core.errors import GatewayError
from interlock.core.inbound_responses import store as responses_store
from interlock.core.inbound_responses.store import ResponsesStore
from interlock.core.store import Store, open_store
from tests.core.test_store import pg_url, url  # noqa: F401  (fixtures: both stores)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(responses_store, "time", fake)
    return fake


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:  # noqa: F811
    opened = await open_store(url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def responses(store: Store, clock: Clock) -> ResponsesStore:
    kept = ResponsesStore(ttl_s=3600)
    await kept.open(store)
    await kept.open(store)  # a second start finds the table made
    return kept


async def save(
    kept: ResponsesStore, clock: Clock, rid: str, previous: str | None, tenant: str = "acme"
) -> None:
    items = json.dumps([{"role": "user", "content": f"{rid} asks"}, {"said": rid}]).encode()
    await kept.save(
        response_id=rid,
        tenant=tenant,
        previous_id=previous,
        created_at=int(clock.now),
        items=items,
        response=json.dumps({"id": rid}).encode(),
    )


def said(chain: list[bytes]) -> list[Any]:
    return [json.loads(items)[1]["said"] for items in chain]


async def test_a_chain_is_read_oldest_first(responses: ResponsesStore, clock: Clock) -> None:
    await save(responses, clock, "resp_gw1", None)
    await save(responses, clock, "resp_gw2", "resp_gw1")
    await save(responses, clock, "resp_gw3", "resp_gw2")
    assert said(await responses.chain("acme", "resp_gw3")) == ["resp_gw1", "resp_gw2", "resp_gw3"]
    assert said(await responses.chain("acme", "resp_gw2")) == ["resp_gw1", "resp_gw2"]
    assert json.loads(await responses.get("acme", "resp_gw2")) == {"id": "resp_gw2"}


async def test_another_tenants_id_is_not_found(responses: ResponsesStore, clock: Clock) -> None:
    await save(responses, clock, "resp_gw1", None)
    for call in (
        responses.chain("other", "resp_gw1"),
        responses.get("other", "resp_gw1"),
        responses.delete("other", "resp_gw1"),
    ):
        with pytest.raises(GatewayError) as caught:
            await call
        assert caught.value.status == 404
    assert said(await responses.chain("acme", "resp_gw1")) == ["resp_gw1"]  # still there


async def test_expired_responses_are_gone_and_purged(
    responses: ResponsesStore, store: Store, clock: Clock
) -> None:
    await save(responses, clock, "resp_gw1", None)
    clock.now += 3600
    with pytest.raises(GatewayError, match="Previous response with id 'resp_gw1' not found"):
        await responses.chain("acme", "resp_gw1")
    with pytest.raises(GatewayError):
        await responses.get("acme", "resp_gw1")
    clock.now += 60
    await save(responses, clock, "resp_gw2", None)  # a write purges what expired
    rows = await store.fetchall("SELECT id FROM interlock_responses")
    assert rows == [("resp_gw2",)]


async def test_a_deleted_turn_breaks_the_chain_after_it(
    responses: ResponsesStore, clock: Clock
) -> None:
    await save(responses, clock, "resp_gw1", None)
    await save(responses, clock, "resp_gw2", "resp_gw1")
    await save(responses, clock, "resp_gw3", "resp_gw2")
    await responses.delete("acme", "resp_gw1")
    with pytest.raises(GatewayError) as caught:
        await responses.chain("acme", "resp_gw3")
    assert caught.value.status == 404
    assert "resp_gw1" in caught.value.message  # the missing turn is named
    with pytest.raises(GatewayError):
        await responses.delete("acme", "resp_gw1")  # deleting twice: not found


def test_the_ttl_comes_from_plugins_toml() -> None:
    from interlock.core.config import ConfigError, parse_config

    assert parse_config({"responses": {"ttl_s": 60}}, source="p.toml").responses.ttl_s == 60
    assert parse_config({}, source="p.toml").responses.ttl_s == 30 * 24 * 3600
    with pytest.raises(ConfigError, match=r"\[responses\] key `ttl`: unknown key"):
        parse_config({"responses": {"ttl": 60}}, source="p.toml")
    with pytest.raises(ConfigError, match="ttl_s"):
        parse_config({"responses": {"ttl_s": 0}}, source="p.toml")
