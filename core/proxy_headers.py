"""The client's address behind a reverse proxy, from `X-Forwarded-For`, trusted only
from the proxies `[server] trusted_proxies` names.

Both profiles serve the app through `create_served_app()` and neither server reads
forwarding headers itself (uvicorn's `proxy_headers` is off; hypercorn has none by
default), so `serve` and `serve --fast` agree: with the default empty list the address is
the TCP peer's, whatever headers say; with a list, a request *from* a listed proxy gets
the right-most address of `X-Forwarded-For` that is not itself a listed proxy (the same
reading as uvicorn's ProxyHeadersMiddleware), and `X-Forwarded-Proto` as its scheme.

A plain ASGI middleware: no buffering, and nothing happens per request when the list is
empty (the app is not wrapped at all). It never logs.
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["TrustedProxies", "create_served_app"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SCHEMES = {"http", "https", "ws", "wss"}


class TrustedProxies:
    """ASGI middleware: rewrite `scope["client"]` (and `scheme`) for trusted proxies."""

    def __init__(self, app: Any, trusted: list[str]) -> None:
        self.app = app
        self.networks: list[_Network] = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.strip().strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self.trusts(client[0]):
            scope = dict(scope)
            forwarded_for = proto = None
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    # Several headers are one comma-separated list, in order.
                    text = value.decode("latin-1")
                    forwarded_for = text if forwarded_for is None else f"{forwarded_for},{text}"
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").strip().lower()
            if proto in _SCHEMES:
                scope["scheme"] = proto
            host = self._client_host(forwarded_for) if forwarded_for else None
            if host:
                scope["client"] = (host, 0)
        await self.app(scope, receive, send)

    def _client_host(self, forwarded_for: str) -> str | None:
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop[:64]
        return hops[0][:64] if hops else None


def create_served_app() -> Any:
    """The app `interlock serve` runs (both profiles, every worker; core/serving.py): the
    gateway from the environment, behind `TrustedProxies` only when `[server]
    trusted_proxies` lists any."""
    from .app import create_app_from_env

    app = create_app_from_env()
    trusted: list[str] = app.state.gateway.config.server.trusted_proxies
    return TrustedProxies(app, trusted) if trusted else app
