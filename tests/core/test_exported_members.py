"""`interlock.core`'s `__init__` is a plugin author's whole API: changing it is deliberate."""

from __future__ import annotations

import interlock.core


def test_public_api_is_exactly_what_all_lists() -> None:
    assert interlock.core.__all__ == [
        "Attempt",
        "Candidate",
        "ConfigError",
        "EmptyConfig",
        "GatewayError",
        "HttpProvider",
        "Identity",
        "Limits",
        "Migration",
        "Plugin",
        "Provider",
        "ProviderReply",
        "ReadyResponse",
        "RequestContext",
        "RoutingDecision",
        "Services",
        "StoreError",
        "UpstreamError",
        "Usage",
        "hookimpl",
        "hookspec",
    ]
    for name in interlock.core.__all__:
        assert getattr(interlock.core, name) is not None
