"""From a request's headers to an `Identity`, with the same work for every failure.

Whatever the request presents (no key, garbage, an unknown, expired or revoked key),
the credential is hashed and the hash is looked up (in the cache, else the store), and
every failure ends in one and the same 401, which the core renders in the caller's
shape: the response says nothing about which case it was. Concurrent requests with the
same uncached key share one store look-up.

A tenant's provider-key overrides are `env:NAME` references, resolved here when a key
is looked up (not per request); the resolved keys go into the Identity for the
provider adapters and are never logged. A reference that does not resolve refuses the
tenant's requests (500) rather than silently billing the gateway's own provider key.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from interlock.core import GatewayError, Identity, StoreError

from .cache import KeyCache
from .directory import Directory, FoundKey
from .keys import hash_key, presented

__all__ = ["Authenticator", "Entry", "unauthorized"]


def unauthorized() -> GatewayError:
    """The one refusal for a missing, unknown, expired or revoked key (a new instance
    each time: a raised exception carries its traceback)."""
    return GatewayError(401, "authentication_error", "invalid or missing API key")


class Entry(msgspec.Struct, frozen=True):
    """A live key as the cache keeps it: the Identity to hand out (copied per request)
    and what is checked on every use."""

    identity: Identity
    expires_at: float | None
    allowed: frozenset[str]  # the tenant's models, for pre_forward (empty: all)
    unresolved: str | None = None  # a provider whose override is not set here


class Authenticator:
    def __init__(
        self,
        directory: Directory,
        cache: KeyCache[Entry],
        logger: Any,
        *,
        secrets: set[str] | None = None,
        now: Callable[[], float] = time.time,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.directory = directory
        self.cache = cache
        self.logger = logger
        self.secrets = secrets if secrets is not None else set()
        self.now = now
        self.environ = environ
        self._inflight: dict[str, asyncio.Future[Entry | None]] = {}

    async def identify(self, headers: Mapping[str, str]) -> Entry:
        """The caller's live key, or `unauthorized()` (also when the key has expired)."""
        digest = hash_key(presented(headers))
        hit, entry = self.cache.get(digest)
        if not hit:
            entry = await self._load(digest)
        return self.checked(entry)

    def cached(self, headers: Mapping[str, str]) -> tuple[str, Entry | None]:
        """`identify`'s first half, without a coroutine: (the digest, the checked entry)
        when the cache knows the key; (the digest, None) when the store must be asked
        (then `await load(digest)` and `checked`). A cached unknown or expired key raises
        the one 401 here, after the same hashing and look-up as any other."""
        digest = hash_key(presented(headers))
        hit, entry = self.cache.get(digest)
        if not hit:
            return digest, None
        return digest, self.checked(entry)

    async def load(self, digest: str) -> Entry:
        """The store's answer for a key the cache does not know, checked."""
        return self.checked(await self._load(digest))

    def checked(self, entry: Entry | None) -> Entry:
        """`entry` when it is a live key whose provider keys are set; else the refusal."""
        if entry is None or (entry.expires_at is not None and entry.expires_at <= self.now()):
            raise unauthorized()
        if entry.unresolved is not None:
            raise GatewayError(
                500,
                "configuration_error",
                f"tenant '{entry.identity.tenant}': its key for provider "
                f"'{entry.unresolved}' is not set on this gateway",
            )
        return entry

    async def _load(self, digest: str) -> Entry | None:
        task = self._inflight.get(digest)
        if task is None:
            task = asyncio.ensure_future(self._fetch(digest))
            self._inflight[digest] = task
            task.add_done_callback(lambda t: self._settled(digest, t))
        # shield: a caller that goes away does not cancel the look-up the others await.
        return await asyncio.shield(task)

    def _settled(self, digest: str, task: asyncio.Future[Entry | None]) -> None:
        self._inflight.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved: nobody may be left to await it

    async def _fetch(self, digest: str) -> Entry | None:
        try:
            found = await self.directory.lookup(digest)
        except StoreError as exc:
            self.logger.error("tenant_auth_store_unavailable", error=str(exc))
            raise GatewayError(
                503,
                "service_unavailable",
                "the gateway cannot check API keys right now; retry shortly",
            ) from None
        entry = None if found is None else self._entry(found)
        self.cache.put(digest, entry)
        return entry

    def _entry(self, found: FoundKey) -> Entry:
        provider_keys: dict[str, str] = {}
        unresolved = None
        for provider, ref in found.provider_keys.items():
            value = self.environ.get(ref.removeprefix("env:"), "") if ref.startswith("env:") else ""
            if value:
                provider_keys[provider] = value
                self.secrets.add(value)
            elif unresolved is None:
                unresolved = provider
                self.logger.warning(
                    "tenant_provider_key_unset", tenant=found.tenant, provider=provider, ref=ref
                )
        identity = Identity(
            tenant=found.tenant,
            key_id=found.key_id,
            name=found.key_name,
            models=list(found.models),
            tenant_limits=found.tenant_limits,
            key_limits=found.key_limits,
            provider_keys=provider_keys,
        )
        return Entry(
            identity=identity,
            expires_at=found.expires_at,
            allowed=frozenset(found.models),
            unresolved=unresolved,
        )
