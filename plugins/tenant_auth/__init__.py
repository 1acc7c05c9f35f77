"""tenant_auth: who is calling, from a virtual key; tenants and keys in the store.

`pre_auth` turns `Authorization: Bearer ik-...` or `x-api-key: ik-...` into
`ctx.identity` (tenant, key id, limits, allowed models, provider-key overrides), or one
401 for every failure; `pre_forward` refuses a model the tenant may not use (403). The
admin API (/admin/..., master key) and the CLI (`interlock tenants|keys`) manage
tenants and keys. Keys are stored as SHA-256 hashes only; no key, master key or
provider key is ever logged or put in an error.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
from starlette.routing import BaseRoute

from interlock.core import GatewayError, Plugin, RequestContext, Services, hookimpl
from interlock.core.config import resolve_secret

from .admin import AdminApi
from .auth import Authenticator, Entry
from .cache import KeyCache
from .config import TenantAuthConfig
from .directory import Directory
from .openapi import openapi_document
from .schema import MIGRATIONS

__all__ = ["TenantAuth"]


class TenantAuth(Plugin):
    name: ClassVar[str] = "tenant_auth"
    Config = TenantAuthConfig
    migrations = MIGRATIONS

    def __init__(self, config: TenantAuthConfig, services: Services) -> None:
        super().__init__(config, services)
        master = resolve_secret(config.master_key, where="[plugins.tenant_auth] key `master_key`")
        self._master = master.reveal() if master is not None else None
        self.directory = Directory(services.store)
        cache: KeyCache[Entry] = KeyCache(
            config.cache_ttl_s, config.negative_cache_ttl_s, config.cache_size
        )
        self.auth = Authenticator(self.directory, cache, services.logger, secrets=services.secrets)
        self.admin = AdminApi(self.directory, self._master, openapi_document())
        if master is None:
            services.logger.info(
                "tenant_auth_admin_disabled",
                reason=f"{config.master_key or 'master_key'} is not set: /admin/ refuses all",
            )

    def secrets(self) -> list[str]:
        """For the log redactor: the master key never reaches a log line."""
        return [self._master] if self._master else []

    @hookimpl
    async def pre_auth(self, ctx: RequestContext) -> None:
        # identify(), with the cache's answer taken without a second coroutine.
        digest, entry = self.auth.cached(ctx.headers)
        if entry is None:
            entry = await self.auth.load(digest)
        ctx.identity = _copy(entry.identity)  # a copy per request
        ctx.state["tenant_auth"] = entry

    @hookimpl
    def pre_forward(self, ctx: RequestContext) -> None:
        """403 when the tenant may not use the requested model; candidates a router chose
        outside the tenant's models are dropped (403 when none is left)."""
        entry: Entry | None = ctx.state.get("tenant_auth")
        if entry is None or not entry.allowed:
            return
        allowed = entry.allowed
        if ctx.requested_model not in allowed:
            raise _forbidden(ctx.requested_model)
        decision = ctx.decision
        if decision is not None and any(c.model not in allowed for c in decision.candidates):
            kept = [c for c in decision.candidates if c.model in allowed]
            if not kept:
                raise _forbidden(decision.candidates[0].model)
            decision.candidates[:] = kept

    @hookimpl
    def register_routes(self) -> list[BaseRoute]:
        return list(self.admin.routes())


_copy = msgspec.structs.replace


def _forbidden(model: str) -> GatewayError:
    shown = model if len(model) <= 200 else model[:200] + "..."
    return GatewayError(
        403,
        "permission_error",
        f"model '{shown}' is not available to this API key",
        param="model",
        code="model_not_allowed",
    )
