"""The Starlette app: routes, lifespan, and the proxy endpoints at the ASGI level.

The proxy endpoints are plain ASGI callables (not request/response functions and never
`BaseHTTPMiddleware`), so the body is read with a size limit as it arrives, streams go
out chunk by chunk with nothing buffered, and a client that disconnects cancels the
upstream request. Everything per request is in `ProxyEndpoint.__call__`; everything
per process is in `Gateway`, built once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .config import Config, ConfigError, load_config
from .context import RequestContext
from .errors import GatewayError, openai_error_body
from .inbound import InboundFormat, OpenAIChat, OpenAIEmbeddings, tags_from
from .inbound_anthropic import AnthropicMessages
from .logging import configure_logging, get_logger
from .pipeline import Pipeline
from .plugins import HookPlans, load_plugins
from .pricing import Pricing
from .providers import BUILTIN_KINDS, Provider
from .services import Services
from .shutdown import DRAIN  # [shutdown]
from .store import open_store

__all__ = ["Gateway", "ProxyEndpoint", "create_app", "create_app_from_env"]

_encode = msgspec.json.Encoder().encode
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_JSON = (b"content-type", b"application/json")


class ClientGone(GatewayError):
    def __init__(self) -> None:
        super().__init__(499, "client_disconnected", "the client closed the connection")


class Gateway:
    """Everything built once per process: config, plugins, providers, plans, pipeline."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log_setup = configure_logging(config.logging.format, config.logging.level)
        self.redactor = self.log_setup.redactor
        self.logger = get_logger()
        self.pricing = Pricing(config.pricing)
        self.services = Services(config, self.pricing, self.logger)
        self.pm, self.plugins = load_plugins(config, self.services)
        self.providers = self._build_providers()
        self.services.providers = self.providers
        for secret in self._secrets():
            self.redactor.add(secret)
        self.plans = HookPlans(self.pm)
        self.pipeline = Pipeline(
            self.plans, self.providers, self.pricing, self.logger, self.log_setup.request
        )
        self.max_body = config.server.max_body_bytes

    def _build_providers(self) -> dict[str, Provider]:
        self.client_kind = self.config.server.upstream_client()
        kinds: dict[str, type[Provider]] = dict(BUILTIN_KINDS)
        for extra in self.pm.hook.register_providers():
            for kind, cls in (extra or {}).items():
                if kind in BUILTIN_KINDS:
                    raise ConfigError(
                        f"{self.config.source}: a plugin may not replace provider kind '{kind}'"
                    )
                kinds[kind] = cls
        providers: dict[str, Provider] = {}
        for pc in self.config.providers:
            cls = kinds.get(pc.kind)
            if cls is None:
                raise ConfigError(
                    f"{self.config.source}: [providers '{pc.name}'] key `kind`: unknown kind "
                    f"'{pc.kind}' (known: {', '.join(sorted(kinds))})"
                )
            provider = cls(pc, client_kind=self.client_kind, source=self.config.source)
            problem = provider.missing()
            if problem:
                self.logger.warning("provider_skipped", provider=pc.name, reason=problem)
                continue
            providers[pc.name] = provider
        return providers

    def _secrets(self) -> list[str]:
        secrets = [s for p in self.providers.values() for s in p.secrets()]
        secrets += [s for plugin in self.plugins for s in getattr(plugin, "secrets", lambda: [])()]
        return secrets

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/v1/chat/completions", ProxyEndpoint(self, OpenAIChat()), methods=["POST"]),
            Route("/v1/embeddings", ProxyEndpoint(self, OpenAIEmbeddings()), methods=["POST"]),
            Route("/v1/messages", ProxyEndpoint(self, AnthropicMessages()), methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]
        for extra in self.pm.hook.register_routes():
            routes.extend(extra or [])
        return routes

    # -- small endpoints ------------------------------------------------------------------
    async def list_models(self, request: Request) -> Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": p.name}
            for p in self.providers.values()
            for m in p.models
        ]
        return Response(_encode({"object": "list", "data": data}), media_type="application/json")

    async def count_tokens(self, request: Request) -> Response:
        """Anthropic's token counting, as clients built for Claude call it (an estimate)."""
        messages = AnthropicMessages()
        try:
            raw = await _read_body(request.receive, dict(request.headers), self.max_body)
            body = messages.count_tokens(raw)
        except GatewayError as err:
            error = messages.error_body(err)
            return Response(error, status_code=err.status, media_type="application/json")
        return Response(body, media_type="application/json")

    async def healthz(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request) -> Response:
        store = self.services.store
        checks = {
            "store": bool(store is not None and await store.ping()),
            "providers": bool(self.providers),
        }
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return Response(
            _encode(body), status_code=200 if ready else 503, media_type="application/json"
        )

    # -- lifecycle ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.services.store = await open_store(self.config.store.url)
        for impl in reversed(self.pm.hook.startup.get_hookimpls()):
            result = impl.function(self.services)
            if asyncio.iscoroutine(result):
                await result
        self.logger.info(
            "started",
            providers=list(self.providers),
            plugins=[getattr(p, "name", type(p).__name__) for p in self.plugins],
        )
        try:
            yield
        finally:
            for impl in reversed(self.pm.hook.shutdown.get_hookimpls()):
                try:
                    result = impl.function(self.services)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception as exc:
                    self.logger.error("shutdown_failed", plugin=impl.plugin_name, error=repr(exc))
            for provider in self.providers.values():
                await provider.aclose()
            await self.services.store.close()
            await asyncio.to_thread(self.log_setup.close)


# The disconnect watcher is a task reading `receive`; it starts 50-100 ms after the
# request does, because a task per request cost ~18 µs of a ~150 µs request and a timer
# per request ~5 µs (measured, bench/README.md), while a request answered sooner has
# nothing left to cancel. A disconnect before then is not lost: the server queues it and
# the watcher reads it first thing.
WATCH_AFTER_S = 0.05


def _request_ids() -> Any:
    """Unique ids without a syscall per request: a random per-process prefix (so replicas
    and workers never collide) and a counter."""
    prefix = os.urandom(6).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):012x}"


class _Watch:
    """Shared between a request and its disconnect watcher."""

    __slots__ = ("gone", "receive", "responding", "task", "watcher")

    def __init__(self, receive: Any, task: asyncio.Task[Any]) -> None:
        self.responding = True
        self.gone = False
        self.receive = receive
        self.task = task
        self.watcher: asyncio.Future[None] | None = None

    def start(self) -> None:
        if self.responding:
            self.watcher = asyncio.ensure_future(_watch_disconnect(self.receive, self.task, self))

    def stop(self) -> None:
        self.responding = False
        if self.watcher is not None:
            self.watcher.cancel()


class _Sweeper:
    """One timer for all requests in flight: every WATCH_AFTER_S it starts the watchers
    of the requests that were already there at the previous tick (two generations), and
    it stops ticking when nothing is in flight."""

    __slots__ = ("armed", "old", "young")

    def __init__(self) -> None:
        self.young: set[_Watch] = set()
        self.old: set[_Watch] = set()
        self.armed = False

    def add(self, watch: _Watch) -> None:
        self.young.add(watch)
        if not self.armed:
            self.armed = True
            asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._tick)

    def remove(self, watch: _Watch) -> None:
        self.young.discard(watch)
        self.old.discard(watch)

    def _tick(self) -> None:
        for watch in self.old:
            watch.start()
        self.old, self.young = self.young, set()
        if self.old:
            asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._tick)
        else:
            self.armed = False


async def _watch_disconnect(receive: Any, task: asyncio.Task[Any], watch: _Watch) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            watch.gone = True
            if watch.responding:
                task.cancel()
            return


class ProxyEndpoint:
    """One proxy route (chat, embeddings, messages) for one inbound wire format."""

    def __init__(self, gateway: Gateway, inbound: InboundFormat) -> None:
        self.gateway = gateway
        self.pipeline = gateway.pipeline
        self.inbound = inbound
        self.max_body = gateway.max_body
        self._sweeper = _Sweeper()
        self._new_id = _request_ids()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id")
        request_id = given if given and _REQUEST_ID.fullmatch(given) else self._new_id()
        inbound = self.inbound
        try:
            raw = await _read_body(receive, headers, self.max_body)
            decoded = inbound.decode(raw, headers)
        except GatewayError as err:
            if not isinstance(err, ClientGone):  # nobody is left to answer
                await self._send_error(send, err, request_id)
            self.gateway.logger.info(
                "request",
                request_id=request_id,
                status=err.status,
                inbound=inbound.name,
                endpoint=inbound.endpoint,
                error=err.type,
            )
            return
        client = scope.get("client")
        ctx = RequestContext(
            request_id=request_id,
            inbound=inbound.name,
            endpoint=inbound.endpoint,
            path=scope["path"],
            headers=headers,
            client=client[0] if client else None,
            raw=decoded.raw,
            body=decoded.head,
            stream=decoded.stream,
            include_usage=decoded.include_usage,
        )
        metadata = getattr(decoded.head, "metadata", None)
        if metadata is not None or "x-interlock-tags" in headers or "x-feature" in headers:
            ctx.tags = tags_from(headers, metadata)
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(receive, task)
        sweeper = self._sweeper
        sweeper.add(watch)
        started = [False]
        try:
            await self.pipeline.prepare(ctx)
            if ctx.stream:
                await self._stream(ctx, send, started)
            else:
                await self._complete(ctx, send, started)
            watch.responding = False
        except asyncio.CancelledError:
            watch.responding = False
            if not watch.gone:
                raise
            task.uncancel()
            ctx.error = ClientGone()
            ctx.status = 499
        except GatewayError as err:
            watch.responding = False
            ctx.error = err
            ctx.status = err.status
            if not started[0]:
                await self._send_error(send, err, request_id)
        except Exception as exc:
            watch.responding = False
            ctx.error = exc
            ctx.status = 500
            self.gateway.logger.exception("request_failed", request_id=request_id)
            if not started[0]:
                internal = GatewayError(
                    500, "internal_error", "the gateway failed to handle the request"
                )
                await self._send_error(send, internal, request_id)
        finally:
            sweeper.remove(watch)
            watch.stop()
            await self.pipeline.finish(ctx)

    async def _complete(self, ctx: RequestContext, send: Any, started: list[bool]) -> None:
        body = self.inbound.render(ctx, await self.pipeline.complete(ctx))
        started[0] = True
        await send(
            {
                "type": "http.response.start",
                "status": ctx.status or 200,
                "headers": [
                    _JSON,
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", ctx.request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        ctx.timings["ttfb_ms"] = ctx.elapsed_ms()

    async def _stream(self, ctx: RequestContext, send: Any, started: list[bool]) -> None:
        handle = await self.pipeline.open_stream(ctx)
        try:
            started[0] = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        *self.inbound.stream_headers,
                        (b"x-request-id", ctx.request_id.encode()),
                    ],
                }
            )
            first = True
            try:
                # [shutdown] past the drain deadline this raises ShuttingDown: the stream
                # ends with an error event below (core/shutdown.py).
                with DRAIN.bounded():
                    async for chunk in self.inbound.render_stream(ctx, handle.events):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        if first:
                            ctx.timings["ttfb_ms"] = ctx.elapsed_ms()
                            first = False
            except GatewayError as err:
                # The stream died after the first byte: tell the client in the stream
                # itself, so the end does not look like a clean finish.
                ctx.error = err
                ctx.status = err.status
                await send(
                    {
                        "type": "http.response.body",
                        "body": self.inbound.stream_error(err),
                        "more_body": True,
                    }
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await handle.aclose()

    async def _send_error(self, send: Any, err: GatewayError, request_id: str) -> None:
        body = self.inbound.error_body(err)
        headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        headers.extend(
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()
        )
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any, headers: dict[str, str], limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` (chunked too)."""
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise GatewayError(400, "invalid_request_error", "invalid Content-Length header")
        if int(length) > limit:
            raise GatewayError(
                413, "request_too_large", f"request body is larger than {limit} bytes"
            )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body = message.get("body", b"")
        if body:
            size += len(body)
            if size > limit:
                raise GatewayError(
                    413, "request_too_large", f"request body is larger than {limit} bytes"
                )
            chunks.append(body)
        if not message.get("more_body", False):
            break
    if not chunks:
        raise GatewayError(400, "invalid_request_error", "request body is empty")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found_error", 405: "method_not_allowed"}.get(
        exc.status_code, "invalid_request_error"
    )
    message = {
        404: f"no route for {request.url.path}",
        405: f"method {request.method} is not allowed here",
    }.get(exc.status_code, str(exc.detail))
    body = openai_error_body(GatewayError(exc.status_code, kind, message))
    return Response(
        body,
        status_code=exc.status_code,
        media_type="application/json",
        headers=dict(exc.headers or {}),
    )


def _server_error(request: Request, exc: Exception) -> Response:
    body = openai_error_body(
        GatewayError(500, "internal_error", "the gateway failed to handle the request")
    )
    return Response(body, status_code=500, media_type="application/json")


def create_app(config: Config | None = None, *, config_path: str | None = None) -> Starlette:
    """The ASGI app. With no arguments: $INTERLOCK_CONFIG, ./plugins.toml, or the mock."""
    gateway = Gateway(config if config is not None else load_config(config_path))
    app = Starlette(
        routes=gateway.routes(),
        lifespan=gateway.lifespan,
        exception_handlers={404: _http_error, 405: _http_error, 500: _server_error},
    )
    app.state.gateway = gateway
    return app


def create_app_from_env() -> Starlette:
    """For `hypercorn interlock.core.app:create_app_from_env()` and worker processes:
    the config from $INTERLOCK_CONFIG, the log format from $INTERLOCK_LOG_FORMAT, the
    profile from $INTERLOCK_PROFILE (set by `serve --fast`: it also picks the client)."""
    config = load_config()
    log_format = os.environ.get("INTERLOCK_LOG_FORMAT")
    if log_format in ("json", "console"):
        config.logging.format = log_format  # type: ignore[assignment]
    if os.environ.get("INTERLOCK_PROFILE") == "fast":
        config.server.profile = "fast"
    return create_app(config)
