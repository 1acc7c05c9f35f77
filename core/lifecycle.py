"""The one owner of a request's life, from its first byte to its one log line.

Every HTTP request under `/v1/` gets a `RequestContext` here before its body is read,
passes `pre_auth` on headers alone, is served (by a proxy endpoint directly, or by the
Starlette router for `/v1/models`, `count_tokens` and plugin routes), and ends in
exactly one `post_response` and one log line, whatever its fate: answered, refused,
failed, or abandoned by the client. Status and error are set in one place
(`RequestContext.fail`), and errors are rendered in the caller's wire format.

Paths outside `/v1/` (`/healthz`, `/readyz`, `/admin/...`) go straight to the router:
they are not proxied requests and have their own authorisation.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .context import Endpoint, RequestContext
from .endpoints import ClientGone, ProxyEndpoint
from .errors import GatewayError
from .exchange import Exchange
from .inbound import InboundFormat, OpenAIChat
from .inbound_anthropic import AnthropicMessages

if TYPE_CHECKING:
    from .app import Gateway

__all__ = ["TIMEOUT_HEADER", "Lifecycle", "request_ids"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
TIMEOUT_HEADER = "x-interlock-timeout-s"
_INTERNAL = GatewayError(500, "internal_error", "the gateway failed to handle the request")
_OTHER_ENDPOINTS: dict[str, Endpoint] = {
    "/v1/models": "models",
    "/v1/messages/count_tokens": "count_tokens",
}


def request_ids() -> Callable[[], str]:
    """Unique ids without a syscall per request: a random per-process prefix (so replicas
    and workers never collide) and a counter."""
    prefix = os.urandom(6).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):012x}"


class Lifecycle:
    """The ASGI entry point in front of the Starlette app."""

    def __init__(self, gateway: Gateway, app: Any, proxy: dict[str, ProxyEndpoint]) -> None:
        self.gateway = gateway
        self.app = app
        self.proxy = proxy
        self.new_id = request_ids()
        self.openai: InboundFormat = OpenAIChat()
        self.anthropic: InboundFormat = AnthropicMessages()
        server = gateway.config.server
        self.timeout_s = server.request_timeout_s
        self.max_timeout_s = server.max_request_timeout_s

    @property
    def state(self) -> Any:
        """The Starlette app's state (`state.gateway`), for tests and tools."""
        return self.app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        endpoint = self.proxy.get(path)
        if endpoint is None and not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id")
        request_id = given if given and _REQUEST_ID.fullmatch(given) else self.new_id()
        if endpoint is not None:
            inbound = endpoint.inbound
            kind: Endpoint = inbound.endpoint
        else:
            inbound = self.anthropic if path.startswith("/v1/messages") else self.openai
            kind = _OTHER_ENDPOINTS.get(path, "other")
        client = scope.get("client")
        ctx = RequestContext(
            request_id=request_id,
            inbound=inbound.name,
            endpoint=kind,
            path=path,
            headers=headers,
            client=client[0] if client else None,
            method=scope["method"],
        )
        gateway = self.gateway
        ex = Exchange(send, ctx, bool(gateway.plans.post_response))
        try:
            ctx.deadline = self._deadline(headers)
            for fn, is_async in gateway.plans.pre_auth:
                result = fn(ctx)
                if is_async:
                    await result
            if endpoint is not None and scope["method"] == "POST":
                await endpoint.handle(ctx, receive, ex)
            else:
                scope["interlock.ctx"] = ctx
                await self.app(scope, receive, ex.send)
        except ClientGone as err:
            ctx.fail(err, 499)
        except GatewayError as err:
            ctx.fail(err, err.status)
            if not ex.started:
                await ex.json(err.status, inbound.error_body(err), dict(err.headers))
        except Exception as exc:
            ctx.fail(exc, 500)
            gateway.logger.exception("request_failed", request_id=request_id)
            if not ex.started:
                await ex.json(500, inbound.error_body(_INTERNAL))
        finally:
            ctx.timings["latency_ms"] = ctx.elapsed_ms()
            await gateway.pipeline.finish(ctx)
            await ex.complete()

    def _deadline(self, headers: dict[str, str]) -> float:
        """Loop time by which every attempt must be done: `[server] request_timeout_s`,
        or the client's `x-interlock-timeout-s`, at most `max_request_timeout_s`."""
        seconds = self.timeout_s
        asked = headers.get(TIMEOUT_HEADER)
        if asked is not None:
            try:
                value = float(asked)
            except ValueError:
                value = -1.0
            if not 0 < value < float("inf"):
                raise GatewayError(
                    400,
                    "invalid_request_error",
                    f"{TIMEOUT_HEADER} must be a positive number of seconds",
                    param=TIMEOUT_HEADER,
                )
            seconds = min(value, self.max_timeout_s)
        return asyncio.get_running_loop().time() + seconds
