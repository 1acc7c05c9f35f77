"""Interlock's core: the whole public API a plugin author needs, and nothing more.

    from interlock.core import hookimpl, Plugin, GatewayError, RoutingDecision, Candidate

Everything else in this package is internal and may change; what is listed in
`__all__` is guarded by tests/core/test_exported_members.py.
"""

from __future__ import annotations

from .config import ConfigError
from .context import (
    Attempt,
    Candidate,
    Identity,
    Limits,
    ReadyResponse,
    RequestContext,
    RoutingDecision,
    Usage,
)
from .deployments import deployments_of
from .errors import GatewayError, UpstreamError
from .hookspecs import hookimpl, hookspec
from .plugins import EmptyConfig, Plugin
from .providers.base import HttpProvider, Provider, ProviderReply
from .services import Services
from .store import Migration, StoreError

__all__ = [
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
    "deployments_of",
    "hookimpl",
    "hookspec",
]
