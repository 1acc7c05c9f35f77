"""Every hook a plugin can implement, grouped by when it runs, each with its contract.

This module defines specs only; `plugins.py` turns the registered implementations into
call plans, and `pipeline.py` runs them. A plugin imports `hookimpl` from
`interlock.core` and implements any subset of these, as methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .context import RequestContext, RoutingDecision
    from .providers.base import Provider
    from .services import Services

PROJECT = "interlock"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------
# Lifecycle: once per process
# ---------------------------------------------------------------------------------------
@hookspec
def startup(services: Services) -> Any:
    """Called once when the server starts, before the first request; may be `async def`.

    Open connections, create tables, start background tasks. An exception here stops
    start-up with the plugin's name in the message.
    """


@hookspec
def shutdown(services: Services) -> Any:
    """Called once when the server stops, after the last request; may be `async def`.

    Flush buffers (audit batches, ledger writes) and close what `startup` opened. Every
    plugin's shutdown runs even when an earlier one raised.
    """


@hookspec
def register_routes() -> list[Any] | None:
    """Return Starlette routes (admin endpoints, a dashboard) to mount on the app.

    Called once at start-up. Paths must not collide with the proxy's `/v1/...` routes;
    a route is responsible for its own authorisation.
    """


@hookspec
def register_providers() -> dict[str, type[Provider]] | None:
    """Return `{kind: ProviderClass}` to add wire formats usable as `kind` in [[providers]].

    Called once at start-up, before providers are built. A kind may not replace a
    built-in one.
    """


# ---------------------------------------------------------------------------------------
# Per request, in this order
# ---------------------------------------------------------------------------------------
@hookspec
def pre_auth(ctx: RequestContext) -> Any:
    """Decide who is calling: set `ctx.identity`, or raise `GatewayError(401|403, ...)`.

    May be `async def`; implementations run in plugins.toml order, each awaited before
    the next, and the first exception stops the request.
    """


@hookspec(firstresult=True)
def route(ctx: RequestContext) -> RoutingDecision | None:
    """Choose candidates for the request: return a `RoutingDecision`, or None to pass.

    Synchronous and pure: read `ctx` (model, tags, identity, body), return a decision,
    do no I/O. The first plugin in plugins.toml order that returns a decision wins.
    With no decision the requested model is served by the first provider listing it.
    """


@hookspec
def pre_forward(ctx: RequestContext) -> Any:
    """Policy before the request leaves: rate limits, budget reservation, redaction,
    cache lookups, adding failover candidates. May be `async def`; runs in order.

    A plugin may set `ctx.response` (a `ReadyResponse`) to answer without forwarding,
    change body fields with `ctx.set_field`, edit `ctx.decision.candidates`, or raise
    `GatewayError` to refuse.
    """


@hookspec
def wrap_stream(ctx: RequestContext, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes] | None:
    """Wrap a streamed answer: take an async iterator of OpenAI-format SSE bytes (whole
    `data: ...` events) and return another, or None to leave it alone.

    Called in plugins.toml order, each wrapping the previous result, when the upstream
    stream has opened. Must stay async all the way: no blocking work per chunk.
    """


@hookspec
def post_response(ctx: RequestContext) -> Any:
    """After the last byte went out, and also when the request failed (`ctx.error` set)
    or the client went away. May be `async def`; runs in order.

    `ctx.usage`, `ctx.cost_usd`, `ctx.attempts`, `ctx.status` are final here: settle
    budgets, write audit records, store cache entries. An exception is logged and does
    not stop later plugins; the response has already been sent.
    """
