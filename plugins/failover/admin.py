"""`GET /admin/circuits`: every known circuit's state, for the operator (master key).

Authorisation is the master key from `[plugins.failover] master_key` (an `env:NAME`
reference), sent as `Authorization: Bearer KEY` or `x-api-key: KEY` and compared in
constant time. With no master key configured the route refuses everything (403): an
admin route is never open by default. The key never appears in a response or a log.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["circuits_route"]

_encode = msgspec.json.Encoder().encode


def _error(status: int, kind: str, message: str) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return Response(_encode(body), status_code=status, media_type="application/json")


def _presented(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
    return request.headers.get("x-api-key")


def circuits_route(
    master_key: str | None, snapshot: Callable[[], Awaitable[list[dict[str, Any]]]]
) -> Route:
    expected = master_key.encode() if master_key else None

    async def circuits(request: Request) -> Response:
        if expected is None:
            return _error(
                403,
                "permission_error",
                "admin routes are disabled: no master key is configured "
                '([plugins.failover] master_key = "env:NAME", with NAME set)',
            )
        given = _presented(request)
        if given is None or not hmac.compare_digest(given.encode(), expected):
            return _error(401, "authentication_error", "a valid master key is required")
        return Response(_encode({"circuits": await snapshot()}), media_type="application/json")

    return Route("/admin/circuits", circuits, methods=["GET"])
