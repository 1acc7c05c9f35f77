"""A stand-in for tenant_auth in the policy tests: the caller's identity from headers.

`x-test-tenant` names the tenant, `x-test-key` the key id, `x-test-limits` carries
`{"tenant": {"rpm": .., "tpm": .., "budget_usd": ..}, "key": {...}}` as JSON. No header,
no identity (the policy plugins then count the request as their anonymous tenant).
"""

import msgspec

from interlock.core import Identity, Limits, Plugin, RequestContext, hookimpl

_decode = msgspec.json.Decoder(dict[str, Limits]).decode


class HeaderIdentity(Plugin):
    name = "test_identity"

    @hookimpl
    def pre_auth(self, ctx: RequestContext) -> None:
        tenant = ctx.headers.get("x-test-tenant")
        if tenant is None:
            return
        raw = ctx.headers.get("x-test-limits")
        limits = _decode(raw) if raw else {}
        ctx.identity = Identity(
            tenant=tenant,
            key_id=ctx.headers.get("x-test-key"),
            tenant_limits=limits.get("tenant", Limits()),
            key_limits=limits.get("key", Limits()),
        )
