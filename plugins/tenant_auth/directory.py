"""Tenants and keys in the store: every read and write of tenant_auth's tables.

The admin API, the CLI and the auth hook all go through `Directory`, so they see the
same data with the same rules. Every statement takes its values as parameters (`?`);
the only SQL assembled at run time is a PATCH's SET list, from fixed column names.
Refusals are `GatewayError`s (the admin API renders them, the CLI prints them); their
messages name fields and tenants, never a key.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from interlock.core import GatewayError, Limits
from interlock.core.store import Row, Store

from .keys import new_key, new_key_id
from .models import (
    KeyCreate,
    KeyCreated,
    KeyInfo,
    Tenant,
    TenantCreate,
    TenantPatch,
)

__all__ = ["Directory", "FoundKey", "decode_cursor", "encode_cursor"]

_encode = msgspec.json.Encoder().encode
_decode_list = msgspec.json.Decoder(list[str]).decode
_decode_map = msgspec.json.Decoder(dict[str, str]).decode
_decode_any = msgspec.json.Decoder(dict[str, Any]).decode

_TENANT_COLUMNS = (
    "name, monthly_budget_usd, rpm, tpm, models, provider_keys, metadata, created_at, updated_at"
)
_KEY_COLUMNS = "id, tenant, prefix, name, budget_usd, rpm, tpm, created_at, expires_at, revoked_at"
# The columns a PATCH may set, each with how its value is stored.
_PATCHABLE: dict[str, Callable[[Any], Any]] = {
    "monthly_budget_usd": lambda v: v,
    "rpm": lambda v: v,
    "tpm": lambda v: v,
    "models": lambda v: _encode(v).decode(),
    "provider_keys": lambda v: _encode(v).decode(),
    "metadata": lambda v: _encode(v).decode(),
}
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")
_LOOKUP = (
    "SELECT k.id, k.name, k.budget_usd, k.rpm, k.tpm, k.expires_at,"
    " t.name, t.monthly_budget_usd, t.rpm, t.tpm, t.models, t.provider_keys"
    " FROM virtual_keys k JOIN tenants t ON t.name = k.tenant"
    " WHERE k.hash = ? AND k.revoked_at IS NULL"
)


class FoundKey(msgspec.Struct, frozen=True):
    """What the auth hook needs about a live key: its tenant, limits and overrides.

    `provider_keys` holds the tenant's `env:NAME` references, not keys.
    """

    key_id: str
    key_name: str | None
    tenant: str
    key_limits: Limits
    tenant_limits: Limits
    models: list[str]
    provider_keys: dict[str, str]
    expires_at: float | None


def _at(seconds: Any) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else _at(seconds)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def encode_cursor(last: str) -> str:
    """An opaque page cursor: the last name or id of the page, url-safe base64."""
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str:
    if not cursor:
        return ""
    try:
        if not _CURSOR.fullmatch(cursor):
            raise ValueError(cursor)
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        raise GatewayError(
            400, "invalid_request_error", "cursor: not a cursor from this API", param="cursor"
        ) from None


class Directory:
    """Tenants and their keys on one store. `now` is injectable for tests of expiry."""

    def __init__(self, store: Store, now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.now = now

    # -- tenants ---------------------------------------------------------------------
    async def create_tenant(self, spec: TenantCreate) -> Tenant:
        now = self.now()
        inserted = await self.store.execute(
            f"INSERT INTO tenants ({_TENANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (
                spec.name,
                spec.monthly_budget_usd,
                spec.rpm,
                spec.tpm,
                _encode(spec.models).decode(),
                _encode(spec.provider_keys).decode(),
                _encode(spec.metadata).decode(),
                now,
                now,
            ),
        )
        if not inserted:
            raise GatewayError(
                409,
                "conflict_error",
                f"name: a tenant named '{spec.name}' already exists",
                param="name",
            )
        tenant = await self.get_tenant(spec.name)
        assert tenant is not None
        return tenant

    async def get_tenant(self, name: str) -> Tenant | None:
        row = await self.store.fetchone(
            f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name = ?", (name,)
        )
        return None if row is None else _tenant(row)

    async def list_tenants(self, limit: int, after: str = "") -> list[Tenant]:
        rows = await self.store.fetchall(
            f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name > ? ORDER BY name LIMIT ?",
            (after, limit),
        )
        return [_tenant(row) for row in rows]

    async def update_tenant(self, name: str, patch: TenantPatch) -> Tenant | None:
        sets: list[str] = []
        params: list[Any] = []
        for column, store_as in _PATCHABLE.items():
            value = getattr(patch, column)
            if value is not msgspec.UNSET:
                sets.append(f"{column} = ?")
                params.append(store_as(value))
        sets.append("updated_at = ?")
        params += [self.now(), name]
        changed = await self.store.execute(
            f"UPDATE tenants SET {', '.join(sets)} WHERE name = ?", params
        )
        return await self.get_tenant(name) if changed else None

    async def delete_tenant(self, name: str) -> bool:
        """The tenant and all its keys, at once."""
        async with self.store.transaction() as tx:
            await tx.execute("DELETE FROM virtual_keys WHERE tenant = ?", (name,))
            return bool(await tx.execute("DELETE FROM tenants WHERE name = ?", (name,)))

    # -- keys ------------------------------------------------------------------------
    async def create_key(self, spec: KeyCreate) -> KeyCreated:
        now = self.now()
        expires = spec.expires_at.timestamp() if spec.expires_at is not None else None
        if expires is not None and expires <= now:
            raise GatewayError(
                400,
                "invalid_request_error",
                "expires_at: must be in the future",
                param="expires_at",
            )
        made = new_key()
        key_id = new_key_id()
        async with self.store.transaction() as tx:
            if await tx.fetchone("SELECT 1 FROM tenants WHERE name = ?", (spec.tenant,)) is None:
                raise GatewayError(
                    400,
                    "invalid_request_error",
                    f"tenant: no tenant named '{spec.tenant}'",
                    param="tenant",
                )
            await tx.execute(
                "INSERT INTO virtual_keys (id, tenant, hash, prefix, name, budget_usd, rpm, tpm,"
                " created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    key_id,
                    spec.tenant,
                    made.hash,
                    made.prefix,
                    spec.name,
                    spec.budget_usd,
                    spec.rpm,
                    spec.tpm,
                    now,
                    expires,
                ),
            )
        return KeyCreated(
            id=key_id,
            key=made.key,
            tenant=spec.tenant,
            prefix=made.prefix,
            name=spec.name,
            expires_at=_moment(expires),
            budget_usd=spec.budget_usd,
            rpm=spec.rpm,
            tpm=spec.tpm,
            created_at=_at(now),
        )

    async def list_keys(self, tenant: str | None, limit: int, after: str = "") -> list[KeyInfo]:
        if tenant is None:
            rows = await self.store.fetchall(
                f"SELECT {_KEY_COLUMNS} FROM virtual_keys WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            )
        else:
            rows = await self.store.fetchall(
                f"SELECT {_KEY_COLUMNS} FROM virtual_keys WHERE tenant = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (tenant, after, limit),
            )
        now = self.now()
        return [_key_info(row, now) for row in rows]

    async def revoke_key(self, key_id: str) -> bool:
        """True when the key exists (revoking twice keeps the first time)."""
        async with self.store.transaction() as tx:
            if await tx.fetchone("SELECT 1 FROM virtual_keys WHERE id = ?", (key_id,)) is None:
                return False
            await tx.execute(
                "UPDATE virtual_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self.now(), key_id),
            )
        return True

    async def lookup(self, digest: str) -> FoundKey | None:
        """The live (unrevoked) key with this hash and its tenant, or None. Expiry is
        the caller's check, so a cached answer expires on time."""
        row = await self.store.fetchone(_LOOKUP, (digest,))
        if row is None:
            return None
        return FoundKey(
            key_id=row[0],
            key_name=row[1],
            key_limits=Limits(rpm=_int(row[3]), tpm=_int(row[4]), budget_usd=_float(row[2])),
            expires_at=_float(row[5]),
            tenant=row[6],
            tenant_limits=Limits(rpm=_int(row[8]), tpm=_int(row[9]), budget_usd=_float(row[7])),
            models=_decode_list(row[10]),
            provider_keys=_decode_map(row[11]),
        )


def _tenant(row: Row) -> Tenant:
    return Tenant(
        name=row[0],
        monthly_budget_usd=_float(row[1]),
        rpm=_int(row[2]),
        tpm=_int(row[3]),
        models=_decode_list(row[4]),
        provider_keys=_decode_map(row[5]),
        metadata=_decode_any(row[6]),
        created_at=_at(row[7]),
        updated_at=_at(row[8]),
    )


def _key_info(row: Row, now: float) -> KeyInfo:
    expires, revoked = _float(row[8]), _float(row[9])
    status: Literal["active", "expired", "revoked"] = "active"
    if revoked is not None:
        status = "revoked"
    elif expires is not None and expires <= now:
        status = "expired"
    return KeyInfo(
        id=row[0],
        tenant=row[1],
        prefix=row[2],
        name=row[3],
        budget_usd=_float(row[4]),
        rpm=_int(row[5]),
        tpm=_int(row[6]),
        created_at=_at(row[7]),
        expires_at=_moment(expires),
        revoked_at=_moment(revoked),
        status=status,
    )
