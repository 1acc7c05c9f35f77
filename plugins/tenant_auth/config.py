"""The `[plugins.tenant_auth]` table: the admin API's master key and the key cache.

The master key is a reference (`env:NAME`), resolved once at start-up into a `Secret`
whose repr never shows it. The cache TTL bounds how long a revoked key keeps working on
a replica that saw it just before the revocation.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["TenantAuthConfig"]


class TenantAuthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # `Authorization: Bearer <master_key>` opens /admin/...; unset: the admin API refuses
    # every request.
    master_key: str | None = "env:INTERLOCK_MASTER_KEY"
    # How long a key found in the store is trusted without asking again (a revocation
    # takes effect on every replica within this), and how long an unknown key is
    # remembered as unknown (a flood of garbage keys costs one look-up each per TTL).
    cache_ttl_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 1.0
    negative_cache_ttl_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 1.0
    # Entries kept per cache (known and unknown keys are kept apart, so unknown keys
    # can never push out the keys of real clients).
    cache_size: Annotated[int, msgspec.Meta(ge=1)] = 10_000
