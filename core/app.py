"""The gateway process: what is built once (config, providers, services, plugins, plans)
and the ASGI app that serves it.

`Gateway` is split in two steps because plugins receive finished services: the parts
that need no event loop (config, logging, providers, plugin classes) are made in
`__init__`, so a bad configuration fails before a server starts; the store and the
counters are opened, migrations applied and the plugins made in `open()`, inside the
lifespan. Per request, everything goes through `lifecycle.Lifecycle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .config import Config, ConfigError, load_config
from .counters import open_counters
from .endpoints import ProxyEndpoint, read_body
from .errors import GatewayError, openai_error_body
from .inbound import OpenAIChat, OpenAIEmbeddings
from .inbound_anthropic import AnthropicMessages
from .inbound_responses import OpenAIResponses
from .inbound_responses.routes import ResponsesRoutes
from .inbound_responses.store import ResponsesStore
from .lifecycle import Lifecycle
from .logging import configure_logging, get_logger
from .pipeline import Pipeline
from .plugins import HookPlans, find_plugin_classes, make_plugin_manager, make_plugins
from .pricing import Pricing
from .providers import BUILTIN_KINDS, Provider
from .services import Services
from .store import open_store

__all__ = ["Gateway", "create_app", "create_app_from_env"]

_encode = msgspec.json.Encoder().encode


class Gateway:
    """Everything built once per process: config, plugins, providers, plans, pipeline."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log_setup = configure_logging(config.logging.format, config.logging.level)
        self.redactor = self.log_setup.redactor
        self.logger = get_logger()
        self.pricing = Pricing(config.pricing)
        self.max_body = config.server.max_body_bytes
        self.plugin_classes = find_plugin_classes(config)
        self.providers = self._build_providers()
        for provider in self.providers.values():
            for secret in provider.secrets():
                self.redactor.add(secret)
        # Until `open()`: no plugin, so every plan is empty.
        self.plugins: list[Any] = []
        self.pm = make_plugin_manager()
        self.services: Services | None = None
        self.extra_routes: list[BaseRoute] = []
        # Conversations of /v1/responses served by translation (opened with the store).
        self.responses = ResponsesStore(config.responses.ttl_s)
        self._use(HookPlans(self.pm))

    def _use(self, plans: HookPlans) -> None:
        self.plans = plans
        self.pipeline = Pipeline(
            plans, self.providers, self.pricing, self.logger, self.log_setup.request
        )

    def _build_providers(self) -> dict[str, Provider]:
        self.client_kind = self.config.server.upstream_client()
        kinds: dict[str, type[Provider]] = dict(BUILTIN_KINDS)
        for entry, cls, _ in self.plugin_classes:
            for kind, provider_cls in getattr(cls, "provider_kinds", {}).items():
                if kind in BUILTIN_KINDS:
                    raise ConfigError(
                        f"{self.config.source}: [plugins.{entry.name}]: a plugin may not "
                        f"replace provider kind '{kind}'"
                    )
                kinds[kind] = provider_cls
        providers: dict[str, Provider] = {}
        for pc in self.config.providers:
            kind_cls = kinds.get(pc.kind)
            if kind_cls is None:
                raise ConfigError(
                    f"{self.config.source}: [providers '{pc.name}'] key `kind`: unknown kind "
                    f"'{pc.kind}' (known: {', '.join(sorted(kinds))})"
                )
            provider = kind_cls(pc, client_kind=self.client_kind, source=self.config.source)
            problem = provider.missing()
            if problem:
                self.logger.warning("provider_skipped", provider=pc.name, reason=problem)
                continue
            providers[pc.name] = provider
        return providers

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self) -> Services:
        """Open the store and the counters, apply plugin migrations, make the plugins."""
        config = self.config
        store = await open_store(config.store.url)
        try:
            counters = await open_counters(config.counters.url)
        except BaseException:
            await store.close()
            raise
        services = Services(
            config, self.pricing, self.logger, store, counters, MappingProxyType(self.providers)
        )
        # A secret a plugin learns at run time (a tenant's provider key) is redacted from
        # every log line from then on: the set is the redactor's own.
        services.secrets = self.redactor.secrets
        self.services = services
        await self.responses.open(store)
        for entry, cls, _ in self.plugin_classes:
            migrations = getattr(cls, "migrations", ())
            if migrations:
                await store.migrate(entry.name, migrations)
        self.pm, self.plugins = make_plugins(config, self.plugin_classes, services)
        for plugin in self.plugins:
            for secret in getattr(plugin, "secrets", lambda: [])():
                self.redactor.add(secret)
        self._use(HookPlans(self.pm))
        self.extra_routes = [r for extra in self.pm.hook.register_routes() for r in extra or []]
        return services

    async def start(self) -> None:
        """`open()`, then every plugin's `startup` hook in plugins.toml order."""
        services = await self.open()
        for impl in reversed(self.pm.hook.startup.get_hookimpls()):
            try:
                result = impl.function(services)
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:
                await self.close()
                raise ConfigError(
                    f"{self.config.source}: [plugins.{impl.plugin_name}]: startup failed: {exc}"
                ) from exc
        self.logger.info(
            "started",
            providers=list(self.providers),
            plugins=[getattr(p, "name", type(p).__name__) for p in self.plugins],
        )

    async def close(self, *, hooks: bool = False) -> None:
        """Run `shutdown` hooks (when `hooks`), stop background tasks, close everything."""
        services = self.services
        if hooks and services is not None:
            for impl in reversed(self.pm.hook.shutdown.get_hookimpls()):
                try:
                    result = impl.function(services)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception as exc:
                    self.logger.error("shutdown_failed", plugin=impl.plugin_name, error=repr(exc))
        if services is not None:
            await services.stop_tasks()
        for provider in self.providers.values():
            await provider.aclose()
        if services is not None:
            await services.counters.close()
            await services.store.close()
            self.services = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        app.router.routes.extend(self.extra_routes)
        try:
            yield
        finally:
            await self.close(hooks=True)
            self.logger.info("stopped")
            await asyncio.to_thread(self.log_setup.close)

    # -- small endpoints ------------------------------------------------------------------
    async def list_models(self, request: Request) -> Response:
        ctx = request.scope.get("interlock.ctx")
        allowed = ctx.identity.models if ctx is not None and ctx.identity is not None else None
        owners: dict[str, str] = {}  # model -> the provider that serves it (the first)
        for p in self.providers.values():
            for m in p.models:
                owners.setdefault(m, p.name)
        for p in self.providers.values():
            if p.serves("*"):  # a catch-all provider answers every priced model
                for m in self.pricing.models():
                    owners.setdefault(m, p.name)
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": owner}
            for m, owner in owners.items()
            if not allowed or m in allowed
        ]
        return Response(_encode({"object": "list", "data": data}), media_type="application/json")

    async def count_tokens(self, request: Request) -> Response:
        """Anthropic's token counting, as clients built for Claude call it: the exact
        count from an `anthropic` provider's own endpoint when one serves the model and no
        pre_forward plugin (redaction, policy) would have edited the body; an estimate
        otherwise."""
        ctx = request.scope["interlock.ctx"]
        raw = await read_body(request.receive, ctx.headers, self.max_body)
        messages = AnthropicMessages()
        estimate = messages.count_tokens(raw)  # validates the request either way
        model = _model_of(raw)
        ctx.requested_model = model
        decision = self.pipeline.default_route(model)
        provider = self.providers[decision.candidates[0].provider]
        count_tokens = getattr(provider, "count_tokens", None)
        if count_tokens is None or self.plans.pre_forward:
            # With policy plugins on (redaction above all), a body goes upstream only
            # through pre_forward, which a count does not run: then it is estimated.
            return Response(estimate, media_type="application/json")
        ctx.provider, ctx.model = provider.name, model
        body = await count_tokens(ctx, raw, model)
        return Response(body, media_type="application/json")

    async def healthz(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request) -> Response:
        store = self.services.store if self.services is not None else None
        checks = {
            "store": bool(store is not None and await store.ping()),
            "providers": bool(self.providers),
        }
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return Response(
            _encode(body), status_code=200 if ready else 503, media_type="application/json"
        )


class _ModelOnly(msgspec.Struct):
    model: str


def _model_of(raw: bytes) -> str:
    return msgspec.json.decode(raw, type=_ModelOnly).model


async def _post_only(request: Request) -> Response:  # pragma: no cover - never reached
    raise HTTPException(405)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found_error", 405: "method_not_allowed"}.get(
        exc.status_code, "invalid_request_error"
    )
    message = {
        404: f"no route for {request.url.path}",
        405: f"method {request.method} is not allowed here",
    }.get(exc.status_code, str(exc.detail))
    err = GatewayError(exc.status_code, kind, message)
    ctx = request.scope.get("interlock.ctx")
    if ctx is not None:
        ctx.fail(err, exc.status_code)
    inbound = AnthropicMessages() if request.url.path.startswith("/v1/messages") else None
    body = inbound.error_body(err) if inbound is not None else openai_error_body(err)
    return Response(
        body,
        status_code=exc.status_code,
        media_type="application/json",
        headers=dict(exc.headers or {}),
    )


def _gateway_error(request: Request, exc: Exception) -> Response:
    """A refusal raised inside a routed endpoint (count_tokens, a plugin's /v1 route)."""
    assert isinstance(exc, GatewayError)
    ctx = request.scope.get("interlock.ctx")
    if ctx is not None:
        ctx.fail(exc, exc.status)
    if request.url.path.startswith("/v1/messages"):
        body = AnthropicMessages().error_body(exc)
    else:
        body = openai_error_body(exc)
    return Response(
        body, status_code=exc.status, media_type="application/json", headers=dict(exc.headers)
    )


def _server_error(request: Request, exc: Exception) -> Response:
    body = openai_error_body(
        GatewayError(500, "internal_error", "the gateway failed to handle the request")
    )
    return Response(body, status_code=500, media_type="application/json")


def create_app(config: Config | None = None, *, config_path: str | None = None) -> Lifecycle:
    """The ASGI app. With no arguments: $INTERLOCK_CONFIG, ./plugins.toml, or the mock."""
    gateway = Gateway(config if config is not None else load_config(config_path))
    proxy = {
        "/v1/chat/completions": ProxyEndpoint(gateway, OpenAIChat()),
        "/v1/embeddings": ProxyEndpoint(gateway, OpenAIEmbeddings()),
        "/v1/messages": ProxyEndpoint(gateway, AnthropicMessages()),
        "/v1/responses": ProxyEndpoint(gateway, OpenAIResponses(gateway.responses)),
    }
    routes: list[BaseRoute] = [Route(path, _post_only, methods=["POST"]) for path in proxy]
    routes += [
        Route("/v1/messages/count_tokens", gateway.count_tokens, methods=["POST"]),
        Route(
            "/v1/responses/{response_id}",
            ResponsesRoutes(gateway).handle,
            methods=["GET", "DELETE"],
        ),
        Route("/v1/models", gateway.list_models, methods=["GET"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/readyz", gateway.readyz, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=gateway.lifespan,
        exception_handlers={
            404: _http_error,
            405: _http_error,
            GatewayError: _gateway_error,
            500: _server_error,
        },
    )
    app.state.gateway = gateway
    return Lifecycle(gateway, app, proxy)


def create_app_from_env() -> Lifecycle:
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
