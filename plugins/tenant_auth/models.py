"""The admin API's documents as msgspec types: they validate request bodies (and the
CLI's arguments), shape responses, and generate `/admin/openapi.json`, so the
description cannot drift from what the server does.

A tenant's name is an identifier (it appears in URLs, logs and counter keys), so it is
restricted to a safe alphabet; everything else is data and goes to the store as a
parameter. Provider-key overrides are `env:NAME` references only: a provider key is
never sent to, stored by, or shown from the admin API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "KeyCreate",
    "KeyCreated",
    "KeyInfo",
    "KeyList",
    "Tenant",
    "TenantCreate",
    "TenantList",
    "TenantPatch",
]

Name = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
        description="letters, digits and . _ @ - (at most 64, not starting with a symbol)",
    ),
]
Label = Annotated[str, Meta(min_length=1, max_length=200)]
ModelName = Annotated[str, Meta(min_length=1, max_length=200)]
ProviderName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
EnvRef = Annotated[
    str,
    Meta(
        pattern=r"^env:[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="env:NAME, read from the gateway's environment when a key is looked up",
    ),
]
PerMinute = Annotated[int, Meta(ge=1, le=2**53)]
Usd = Annotated[float, Meta(ge=0, le=1e12)]
Moment = Annotated[datetime, Meta(tz=True, description="RFC 3339 with a time zone")]
Models = Annotated[list[ModelName], Meta(max_length=1000, description="empty: every model")]
ProviderKeys = Annotated[
    dict[ProviderName, EnvRef],
    Meta(max_length=100, description="provider name -> env:NAME of the tenant's own key"),
]
Metadata = Annotated[dict[str, Any], Meta(max_length=100)]


class _In(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class _Out(msgspec.Struct, kw_only=True):
    pass


# -- tenants ---------------------------------------------------------------------------
class TenantCreate(_In):
    name: Name
    monthly_budget_usd: Usd | None = None
    rpm: PerMinute | None = None
    tpm: PerMinute | None = None
    models: Models = []
    provider_keys: ProviderKeys = {}
    metadata: Metadata = {}


class TenantPatch(_In):
    """Only the fields present change; null clears a limit."""

    monthly_budget_usd: Usd | UnsetType | None = UNSET
    rpm: PerMinute | UnsetType | None = UNSET
    tpm: PerMinute | UnsetType | None = UNSET
    models: Models | UnsetType = UNSET
    provider_keys: ProviderKeys | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


class Tenant(_Out):
    name: str
    monthly_budget_usd: float | None
    rpm: int | None
    tpm: int | None
    models: list[str]
    provider_keys: dict[str, str]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TenantList(_Out):
    data: list[Tenant]
    next_cursor: str | None = None


# -- keys ------------------------------------------------------------------------------
class KeyCreate(_In):
    tenant: Name
    name: Label | None = None
    expires_at: Moment | None = None
    budget_usd: Usd | None = None
    rpm: PerMinute | None = None
    tpm: PerMinute | None = None


class KeyCreated(_Out):
    """The one answer that carries the key itself: it is not stored and not shown again."""

    id: str
    key: str
    tenant: str
    prefix: str
    name: str | None
    expires_at: datetime | None
    budget_usd: float | None
    rpm: int | None
    tpm: int | None
    created_at: datetime


class KeyInfo(_Out):
    id: str
    tenant: str
    prefix: str
    name: str | None
    status: Literal["active", "expired", "revoked"]
    expires_at: datetime | None
    revoked_at: datetime | None
    budget_usd: float | None
    rpm: int | None
    tpm: int | None
    created_at: datetime


class KeyList(_Out):
    data: list[KeyInfo]
    next_cursor: str | None = None


# -- errors, in OpenAI's shape ---------------------------------------------------------
class ErrorDetail(_Out):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(_Out):
    error: ErrorDetail
