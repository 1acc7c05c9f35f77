"""The conversations the gateway keeps for `/v1/responses` answered by translation.

OpenAI keeps every response it generates (unless `store: false`), so a client may chain
the next turn with `previous_response_id`, fetch a response with `GET /v1/responses/{id}`
or delete it. When the gateway translates a Responses request for Claude, Gemini or a
local model, no provider keeps anything, so the gateway does, in its own store: one row
per response with this turn's input items, its output items and the Response object.
A chain is read back in one recursive query, oldest turn first.

Every lookup is per tenant (`ctx.identity.tenant`, or "anonymous" without an auth
plugin) and ignores expired rows: another tenant's id, an expired one and a missing one
all look the same, a 404. Ids are 128 random bits, so they cannot be guessed. Rows live
`[responses] ttl_s` seconds (30 days by default); expired rows are purged at most once a
minute, on a write. What is stored is what the client sent and what it received.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import GatewayError
from ..store import Migration

if TYPE_CHECKING:
    from ..context import RequestContext
    from ..store import Store

__all__ = ["GATEWAY_PREFIX", "MIGRATIONS", "ResponsesStore", "is_gateway_id", "tenant_of"]

# Ids of responses the gateway answered: "resp_gw" + 32 hex digits. OpenAI's own ids are
# "resp_" + hex, so "g" and "w" tell the two apart without a lookup.
GATEWAY_PREFIX = "resp_gw"
OWNER = "core.responses"  # the migration owner: no plugin can be named with a dot

MIGRATIONS = (
    Migration(
        1,
        (
            "CREATE TABLE interlock_responses ("
            " id TEXT PRIMARY KEY,"
            " tenant TEXT NOT NULL,"
            " previous_id TEXT,"
            " created_at BIGINT NOT NULL,"
            " expires_at BIGINT NOT NULL,"
            " items TEXT NOT NULL,"  # this turn's input items then its output items (JSON)
            " response TEXT NOT NULL)",  # the Response object as the client received it
            "CREATE INDEX interlock_responses_expiry ON interlock_responses (expires_at)",
        ),
    ),
)

_INSERT = (
    "INSERT INTO interlock_responses"
    " (id, tenant, previous_id, created_at, expires_at, items, response)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_CHAIN = """
WITH RECURSIVE chain(id, previous_id, items, depth) AS (
    SELECT id, previous_id, items, 0 FROM interlock_responses
     WHERE id = ? AND tenant = ? AND expires_at > ?
    UNION ALL
    SELECT r.id, r.previous_id, r.items, chain.depth + 1
      FROM interlock_responses r JOIN chain ON r.id = chain.previous_id
     WHERE r.tenant = ? AND r.expires_at > ? AND chain.depth < 10000
)
SELECT previous_id, items FROM chain ORDER BY depth DESC
"""
_GET = "SELECT response FROM interlock_responses WHERE id = ? AND tenant = ? AND expires_at > ?"
_DELETE = "DELETE FROM interlock_responses WHERE id = ? AND tenant = ? AND expires_at > ?"
_PURGE = "DELETE FROM interlock_responses WHERE expires_at <= ?"
_PURGE_EVERY_S = 60


def is_gateway_id(response_id: str) -> bool:
    return response_id.startswith(GATEWAY_PREFIX)


def tenant_of(ctx: RequestContext) -> str:
    return ctx.identity.tenant if ctx.identity is not None else "anonymous"


def not_found(response_id: str, *, previous: bool = False) -> GatewayError:
    """OpenAI's 404 for a response it does not have (the id is the client's own)."""
    if previous:
        return GatewayError(
            404,
            "invalid_request_error",
            f"Previous response with id '{response_id[:200]}' not found.",
            code="previous_response_not_found",
            param="previous_response_id",
        )
    return GatewayError(
        404, "invalid_request_error", f"Response with id '{response_id[:200]}' not found."
    )


class ResponsesStore:
    """The `interlock_responses` table; `open` applies its migration (Gateway.open)."""

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self._store: Store | None = None
        self._purged = 0.0

    async def open(self, store: Store) -> None:
        await store.migrate(OWNER, MIGRATIONS)
        self._store = store

    @property
    def store(self) -> Store:
        if self._store is None:
            raise GatewayError(503, "not_ready", "the gateway's store is not open yet")
        return self._store

    async def save(
        self,
        *,
        response_id: str,
        tenant: str,
        previous_id: str | None,
        created_at: int,
        items: bytes,
        response: bytes,
    ) -> None:
        store = self.store
        now = int(time.time())
        if now - self._purged >= _PURGE_EVERY_S:
            self._purged = now
            await store.execute(_PURGE, (now,))
        await store.execute(
            _INSERT,
            (
                response_id,
                tenant,
                previous_id,
                created_at,
                created_at + self.ttl_s,
                items.decode(),
                response.decode(),
            ),
        )

    async def chain(self, tenant: str, response_id: str) -> list[bytes]:
        """The items of every turn up to `response_id`, oldest first; a 404 when it, or
        any turn before it, is missing (deleted, expired or another tenant's): a
        conversation is never sent on with a hole in it."""
        now = int(time.time())
        rows = await self.store.fetchall(_CHAIN, (response_id, tenant, now, tenant, now))
        if not rows:
            raise not_found(response_id, previous=True)
        oldest_previous = rows[0][0]
        if oldest_previous is not None:
            raise not_found(oldest_previous, previous=True)
        return [_bytes(items) for _, items in rows]

    async def get(self, tenant: str, response_id: str) -> bytes:
        row = await self.store.fetchone(_GET, (response_id, tenant, int(time.time())))
        if row is None:
            raise not_found(response_id)
        return _bytes(row[0])

    async def delete(self, tenant: str, response_id: str) -> None:
        deleted = await self.store.execute(_DELETE, (response_id, tenant, int(time.time())))
        if not deleted:
            raise not_found(response_id)


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
