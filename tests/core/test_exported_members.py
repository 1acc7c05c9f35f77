"""`interlock.core`'s `__init__` is a plugin author's whole API: changing it is deliberate."""

from __future__ import annotations

import importlib

import msgspec
import pluggy

import interlock.core

# Each public name: the module that defines it, and what kind of thing it must be.
EXPORTED = {
    "Attempt": ("context", msgspec.Struct),
    "Candidate": ("context", msgspec.Struct),
    "ConfigError": ("config", Exception),
    "EmptyConfig": ("plugins", msgspec.Struct),
    "GatewayError": ("errors", Exception),
    "HttpProvider": ("providers.base", "Provider"),
    "Identity": ("context", msgspec.Struct),
    "Limits": ("context", msgspec.Struct),
    "Migration": ("store", msgspec.Struct),
    "Plugin": ("plugins", object),
    "Provider": ("providers.base", object),
    "ProviderReply": ("providers.base", msgspec.Struct),
    "ReadyResponse": ("context", msgspec.Struct),
    "RequestContext": ("context", object),
    "RoutingDecision": ("context", msgspec.Struct),
    "Services": ("services", object),
    "StoreError": ("store", Exception),
    "UpstreamError": ("errors", "GatewayError"),
    "Usage": ("context", msgspec.Struct),
    "deployments_of": ("deployments", None),
    "hookimpl": ("hookspecs", pluggy.HookimplMarker),
    "hookspec": ("hookspecs", pluggy.HookspecMarker),
}


def test_public_api_is_exactly_what_all_lists() -> None:
    assert interlock.core.__all__ == list(EXPORTED)


def test_each_public_name_is_the_object_its_module_defines() -> None:
    for name, (module_name, kind) in EXPORTED.items():
        module = importlib.import_module(f"interlock.core.{module_name}")
        exported = getattr(interlock.core, name)
        assert exported is getattr(module, name), name
        if kind is None:  # a plain function, defined in its module
            assert callable(exported) and exported.__module__ == module.__name__, name
            continue
        if name.islower():  # the pluggy markers, bound to this project's name
            assert isinstance(exported, kind), name  # type: ignore[arg-type]
            assert exported.project_name == "interlock"
            continue
        assert isinstance(exported, type), name
        assert exported.__module__ == module.__name__, name  # defined there, not re-exported
        base = getattr(interlock.core, kind) if isinstance(kind, str) else kind
        assert issubclass(exported, base), name
