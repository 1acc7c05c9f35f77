"""tenant_auth's pieces without a server: key shape and hashing, the cache's TTLs and
bounds (on a fake clock), and the authenticator's same-work-for-every-failure rule."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from typing import Any

import pytest

from interlock.core import GatewayError, Limits
from interlock.core.store import StoreError
from interlock.plugins.tenant_auth.auth import Authenticator, Entry
from interlock.plugins.tenant_auth.cache import KeyCache
from interlock.plugins.tenant_auth.directory import FoundKey
from interlock.plugins.tenant_auth.keys import hash_key, new_key, new_key_id, presented


# -- keys ------------------------------------------------------------------------------------
def test_a_new_key_is_ik_and_32_random_bytes_stored_as_its_sha256() -> None:
    made = new_key()
    assert re.fullmatch(r"ik-[A-Za-z0-9_-]{43}", made.key)
    assert len(base64.urlsafe_b64decode(made.key[3:] + "=")) == 32
    assert made.hash == hashlib.sha256(made.key.encode()).hexdigest()
    assert made.prefix == made.key[:11] and made.key[11:] not in made.prefix
    assert len({new_key().key for _ in range(100)}) == 100
    assert re.fullmatch(r"key_[0-9a-f]{16}", new_key_id())


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer ik-abc"}, "ik-abc"),
        ({"authorization": "bearer  ik-abc "}, "ik-abc"),
        ({"x-api-key": "ik-abc"}, "ik-abc"),
        ({"authorization": "Bearer ik-a", "x-api-key": "ik-b"}, "ik-a"),
        ({"authorization": "Basic ik-abc"}, ""),
        ({}, ""),
    ],
)
def test_the_presented_key(headers: dict[str, str], expected: str) -> None:
    assert presented(headers) == expected


# -- the cache -------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_known_key_is_trusted_for_its_ttl_only() -> None:
    clock = Clock()
    cache: KeyCache[str] = KeyCache(1.0, 0.5, 10, clock)
    cache.put("h", "entry")
    clock.now += 0.999
    assert cache.get("h") == (True, "entry")
    clock.now += 0.002  # past the TTL: the store must be asked again (a revocation shows)
    assert cache.get("h") == (False, None)


def test_an_unknown_key_is_remembered_for_the_negative_ttl() -> None:
    clock = Clock()
    cache: KeyCache[str] = KeyCache(1.0, 0.5, 10, clock)
    cache.put("h", None)
    assert cache.get("h") == (True, None)
    clock.now += 0.5
    assert cache.get("h") == (False, None)


def test_ttl_zero_caches_nothing() -> None:
    cache: KeyCache[str] = KeyCache(0.0, 0.0, 10, Clock())
    cache.put("a", "x")
    cache.put("b", None)
    assert cache.get("a") == cache.get("b") == (False, None)


def test_unknown_keys_never_push_out_known_ones() -> None:
    cache: KeyCache[str] = KeyCache(60.0, 60.0, 3, Clock())
    for i in range(3):
        cache.put(f"known{i}", f"v{i}")
    for i in range(1000):
        cache.put(f"garbage{i}", None)
    assert all(cache.get(f"known{i}") == (True, f"v{i}") for i in range(3))
    assert len(cache) == 6  # each map bounded on its own
    cache.put("known3", "v3")  # the oldest known one goes
    assert cache.get("known0") == (False, None) and cache.get("known3") == (True, "v3")


# -- the authenticator -----------------------------------------------------------------------
def found(expires_at: float | None = None, **over: Any) -> FoundKey:
    fields: dict[str, Any] = dict(
        key_id="key_1",
        key_name=None,
        tenant="acme",
        key_limits=Limits(),
        tenant_limits=Limits(rpm=5),
        models=["gpt-4o"],
        provider_keys={},
        expires_at=expires_at,
    )
    fields.update(over)
    return FoundKey(**fields)


class FakeDirectory:
    """Records every digest it is asked for; answers from `keys` (by key)."""

    def __init__(self, keys: dict[str, FoundKey] | None = None) -> None:
        self.by_hash = {hash_key(k): v for k, v in (keys or {}).items()}
        self.asked: list[str] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def lookup(self, digest: str) -> FoundKey | None:
        self.asked.append(digest)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise StoreError("postgresql: ConnectionDoesNotExistError: gone")
        return self.by_hash.get(digest)


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def error(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    warning = error


def authenticator(
    directory: FakeDirectory, clock: Clock | None = None, now: float = 1000.0, **kw: Any
) -> Authenticator:
    cache: KeyCache[Entry] = KeyCache(1.0, 1.0, 100, clock or Clock())
    return Authenticator(directory, cache, Log(), now=lambda: now, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "credential"),
    [
        ({}, ""),
        ({"authorization": "Bearer ik-unknown"}, "ik-unknown"),
        ({"authorization": "Bearer garbage"}, "garbage"),
        ({"x-api-key": "ik-expired"}, "ik-expired"),
        ({"authorization": "Basic abc"}, ""),
    ],
)
async def test_every_failure_hashes_and_looks_up_then_the_same_401(
    headers: dict[str, str], credential: str
) -> None:
    directory = FakeDirectory({"ik-expired": found(expires_at=999.0)})
    auth = authenticator(directory, now=1000.0)
    with pytest.raises(GatewayError) as refused:
        await auth.identify(headers)
    assert directory.asked == [hash_key(credential)]  # a look-up, whatever the shape
    assert (refused.value.status, refused.value.type, refused.value.message) == (
        401,
        "authentication_error",
        "invalid or missing API key",
    )


async def test_a_cached_key_expires_on_time_without_asking_the_store() -> None:
    directory = FakeDirectory({"ik-k": found(expires_at=1000.5)})
    now = [1000.0]
    auth = authenticator(directory)
    auth.now = lambda: now[0]
    assert (await auth.identify({"x-api-key": "ik-k"})).identity.tenant == "acme"
    now[0] = 1000.5
    with pytest.raises(GatewayError):
        await auth.identify({"x-api-key": "ik-k"})
    assert len(directory.asked) == 1


async def test_a_revocation_shows_once_the_ttl_passed() -> None:
    directory = FakeDirectory({"ik-k": found()})
    clock = Clock()
    auth = authenticator(directory, clock)
    await auth.identify({"x-api-key": "ik-k"})
    directory.by_hash.clear()  # revoked in the store
    clock.now += 0.9
    await auth.identify({"x-api-key": "ik-k"})  # still trusted within the TTL (1 s)
    clock.now += 0.2
    with pytest.raises(GatewayError):
        await auth.identify({"x-api-key": "ik-k"})
    assert len(directory.asked) == 2


async def test_concurrent_requests_with_one_uncached_key_share_one_lookup() -> None:
    directory = FakeDirectory({"ik-k": found()})
    directory.gate = asyncio.Event()
    auth = authenticator(directory)
    waiting = [asyncio.ensure_future(auth.identify({"x-api-key": "ik-k"})) for _ in range(50)]
    await asyncio.sleep(0)
    directory.gate.set()
    entries = await asyncio.gather(*waiting)
    assert len(directory.asked) == 1
    assert {e.identity.tenant for e in entries} == {"acme"}


async def test_a_caller_that_leaves_does_not_cancel_the_others_lookup() -> None:
    directory = FakeDirectory({"ik-k": found()})
    directory.gate = asyncio.Event()
    auth = authenticator(directory)
    first = asyncio.ensure_future(auth.identify({"x-api-key": "ik-k"}))
    second = asyncio.ensure_future(auth.identify({"x-api-key": "ik-k"}))
    await asyncio.sleep(0)
    first.cancel()
    directory.gate.set()
    assert (await second).identity.tenant == "acme"


async def test_a_store_that_is_down_is_a_503_not_a_401() -> None:
    directory = FakeDirectory()
    directory.fail = True
    auth = authenticator(directory)
    with pytest.raises(GatewayError) as refused:
        await auth.identify({"x-api-key": "ik-k"})
    assert refused.value.status == 503
    assert "ik-k" not in refused.value.message
    assert [event for event, _ in auth.logger.events] == ["tenant_auth_store_unavailable"]


async def test_provider_key_references_resolve_at_lookup_and_join_the_secrets() -> None:
    directory = FakeDirectory(
        {"ik-k": found(provider_keys={"up": "env:UP_KEY", "other": "env:OTHER_KEY"})}
    )
    secrets: set[str] = set()
    auth = authenticator(
        directory, secrets=secrets, environ={"UP_KEY": "sk-up", "OTHER_KEY": "sk-o"}
    )
    entry = await auth.identify({"x-api-key": "ik-k"})
    assert entry.identity.provider_keys == {"up": "sk-up", "other": "sk-o"}
    assert secrets == {"sk-up", "sk-o"}


async def test_the_sync_cache_path_refuses_and_admits_like_identify() -> None:
    """pre_auth's path (`cached`, then `load` on a miss) does identify's work: a miss is
    looked up once, then answered from the cache; an unknown key is the same 401 either
    way, after the same hashing and look-up."""
    directory = FakeDirectory({"ik-k": found()})
    auth = authenticator(directory)
    headers = {"x-api-key": "ik-k"}
    digest, entry = auth.cached(headers)
    assert (digest, entry) == (hash_key("ik-k"), None)  # not cached yet: ask the store
    assert (await auth.load(digest)).identity.tenant == "acme"
    _, entry = auth.cached(headers)
    assert entry is not None and entry.identity.tenant == "acme"
    assert directory.asked == [hash_key("ik-k")]
    for attempt in range(2):  # from the store, then from the negative cache
        bad = {"x-api-key": "ik-nope"}
        with pytest.raises(GatewayError) as refused:
            digest, entry = auth.cached(bad)
            assert attempt == 0 and entry is None
            await auth.load(digest)
        assert (refused.value.status, refused.value.message) == (401, "invalid or missing API key")
    assert directory.asked == [hash_key("ik-k"), hash_key("ik-nope")]
