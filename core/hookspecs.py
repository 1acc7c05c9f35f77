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
    from .context import Attempt, RequestContext, RoutingDecision
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

    Everything on `services` is ready by then (and already when the plugin was
    constructed): the open store with this plugin's `migrations` applied, the counters,
    the providers, `spawn` for background tasks. Start background work, warm caches. An
    exception here stops start-up with the plugin's name in the message.
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


# ---------------------------------------------------------------------------------------
# Per request, in this order
# ---------------------------------------------------------------------------------------
@hookspec
def pre_auth(ctx: RequestContext) -> Any:
    """Decide who is calling: set `ctx.identity`, or raise `GatewayError(401|403, ...)`.

    Runs for every request under `/v1/` BEFORE the body is read: only `ctx.method`,
    `ctx.path`, `ctx.headers` and `ctx.client` are known (`ctx.raw` is empty and
    `ctx.requested_model` is ""), so an anonymous client is refused without the gateway
    reading or parsing its body. Checks that need the body (may this tenant use this
    model?) belong in `pre_forward`. May be `async def`; implementations run in
    plugins.toml order, each awaited before the next, and the first exception stops the
    request.
    """


@hookspec(firstresult=True)
def route(ctx: RequestContext) -> RoutingDecision | None:
    """Choose candidates for the request: return a `RoutingDecision`, or None to pass.

    Synchronous and pure: read `ctx` (model, tags, identity, body), return a decision,
    do no I/O; an `async def route` is refused at start-up. The first plugin in
    plugins.toml order that returns a decision wins, and the core works on a copy of it,
    so a router may return the same (cached) decision object every time. With no
    decision the requested model is served by the first provider listing it.
    """


@hookspec
def pre_forward(ctx: RequestContext) -> Any:
    """Policy before the request leaves: rate limits, budget reservation, redaction,
    cache lookups, adding failover candidates. May be `async def`; runs in order.

    A plugin may set `ctx.response` (a `ReadyResponse`) to answer without forwarding
    (the plugins after it in `pre_forward` do not run), change body fields with
    `ctx.set_field` or message texts with `ctx.map_texts`, edit
    `ctx.decision.candidates` (a per-request copy), add response headers with
    `ctx.add_header`, or raise `GatewayError` to refuse.
    """


@hookspec
def on_attempt(ctx: RequestContext, attempt: Attempt) -> Any:
    """After every upstream try, success or failure, as it happens; may be `async def`.

    `attempt` (provider, model, status, error, retryable, latency_ms) is final and is
    already in `ctx.attempts`. A circuit breaker learns outcomes here, and may remove the
    remaining candidates of a failing provider from `ctx.decision.candidates` (the core
    reads that list after each attempt). Keep it cheap: it runs between a failure and
    the next try. An exception is logged and ignored.
    """


@hookspec
def wrap_stream(ctx: RequestContext, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes] | None:
    """Wrap a streamed answer: take an async iterator of SSE bytes (whole events) and
    return another, or None to leave it alone.

    `ctx.wire` names the events' format: "openai" (chat.completion.chunk
    `data:` events) or, on a native pass-through, the provider's own ("anthropic", or
    "responses" for OpenAI's Responses API events).
    Called in plugins.toml order, each wrapping the previous result, when the upstream
    stream has opened. Every layer is closed (`aclose`) outermost first, innermost last,
    before `post_response` runs, also when the client went away. Must stay async all
    the way: no blocking work per chunk.
    """


@hookspec
def transform_response(ctx: RequestContext, body: bytes) -> bytes | None:
    """See or replace a complete non-streamed answer before it is rendered for the
    caller; return new bytes, or None to leave it alone. May be `async def`.

    `body` is the whole answer in `ctx.wire` ("openai": a chat.completion or
    embeddings list; a native pass-through: the provider's own JSON). Runs in
    plugins.toml order, each seeing the previous result, only for answers that came
    from an upstream (not for a `ReadyResponse`). Redaction restores placeholders here;
    a cache may keep the body here and store it in `post_response`.
    """


@hookspec
def post_response(ctx: RequestContext) -> Any:
    """Exactly once for every request under `/v1/` that reached the gateway, whatever
    its fate: answered, refused (400, 401, 403, 404, 405, 413, 415, 429), failed (5xx),
    the client gone (499), served by a `ReadyResponse`, `/v1/models`, `count_tokens`,
    plugin routes under `/v1/`. May be `async def`; runs in order.

    `ctx.status`, `ctx.error`, `ctx.usage`, `ctx.cost_usd`, `ctx.attempts` are final
    here: settle budgets, write audit records, store cache entries. An exception is
    logged and does not stop later plugins. For a non-streamed answer the core awaits
    these hooks before it completes the response body (so a durable audit record is
    committed before the client has the whole answer); keep them fast.
    """
