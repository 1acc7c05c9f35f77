"""The admin API under /admin/: tenants and keys over JSON, for the operator only.

Every route first checks `Authorization: Bearer <master_key>` (compared in constant
time); with no master key configured every route refuses. Bodies are validated by the
msgspec types in models.py, and a refusal names the field, in OpenAI's error shape
(the core renders the `GatewayError`s raised here). Lists are paginated with `limit`
and an opaque `cursor`. The only response that carries a key is the 201 of
`POST /admin/keys`, marked `cache-control: no-store`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlock.core import GatewayError

from .directory import Directory, decode_cursor, encode_cursor
from .models import KeyCreate, KeyList, TenantCreate, TenantList, TenantPatch

__all__ = ["MAX_BODY", "AdminApi", "validation_error"]

T = TypeVar("T")
MAX_BODY = 64 * 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_encode = msgspec.json.Encoder().encode
_JSON = "application/json"
_AT = re.compile(r" - at `(?:key in )?\$\.?(?P<path>[^`]*)`$")
_FIELD = re.compile(r"(?:unknown|required) field `(?P<field>[^`]+)`")
_KEY_IN = re.compile(r" - at `key` in `\$\.(?P<path>[^`]*)`$")

Handler = Callable[[Request], Awaitable[Response]]


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> GatewayError:
    """A 400 naming the field msgspec complained about (`param`, and the message)."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return GatewayError(400, "invalid_request_error", "the body is not valid JSON")
    field = ""
    if found := _KEY_IN.search(text):
        field, text = found["path"], text[: found.start()] + " (a key)"
    elif found := _AT.search(text):
        field, text = found["path"], text[: found.start()]
    elif found := _FIELD.search(text):
        field = found["field"]
    top = re.split(r"[.\[]", field, maxsplit=1)[0] if field else None
    message = f"{top}: {text}" if top else text
    return GatewayError(400, "invalid_request_error", message, param=top)


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(doc), status_code=status, media_type=_JSON, headers=headers)


def _not_found(what: str, param: str) -> GatewayError:
    return GatewayError(404, "not_found_error", what, param=param)


class AdminApi:
    """The routes, bound to one directory and the configured master key (or None)."""

    def __init__(self, directory: Directory, master_key: str | None, openapi: bytes) -> None:
        self.directory = directory
        self._master = hashlib.sha256(master_key.encode()).digest() if master_key else None
        self._openapi = openapi
        self._decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
            t: msgspec.json.Decoder(t) for t in (TenantCreate, TenantPatch, KeyCreate)
        }

    def routes(self) -> list[Route]:
        guard = self._guarded
        return [
            Route("/admin/openapi.json", guard(self.openapi), methods=["GET"]),
            Route("/admin/tenants", guard(self.create_tenant), methods=["POST"]),
            Route("/admin/tenants", guard(self.list_tenants), methods=["GET"]),
            Route("/admin/tenants/{name}", guard(self.get_tenant), methods=["GET"]),
            Route("/admin/tenants/{name}", guard(self.patch_tenant), methods=["PATCH"]),
            Route("/admin/tenants/{name}", guard(self.delete_tenant), methods=["DELETE"]),
            Route("/admin/keys", guard(self.create_key), methods=["POST"]),
            Route("/admin/keys", guard(self.list_keys), methods=["GET"]),
            Route("/admin/keys/{id}", guard(self.revoke_key), methods=["DELETE"]),
        ]

    # -- authorisation and bodies ------------------------------------------------------
    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            self._authorise(request.headers.get("authorization", ""))
            return await handler(request)

        guarded.__name__ = handler.__name__
        return guarded

    def _authorise(self, header: str) -> None:
        if self._master is None:
            raise GatewayError(
                403,
                "permission_error",
                "the admin API is disabled: no master key is configured "
                "([plugins.tenant_auth] master_key)",
            )
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
        if not hmac.compare_digest(digest, self._master):
            raise GatewayError(
                401,
                "authentication_error",
                "invalid or missing master key",
                headers={"www-authenticate": "Bearer"},
            )

    async def _body(self, request: Request, type_: type[T]) -> T:
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise GatewayError(413, "request_too_large", f"the body is over {MAX_BODY} bytes")
        try:
            result: T = self._decoders[type_].decode(bytes(raw))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise validation_error(exc) from None
        return result

    @staticmethod
    def _page(request: Request) -> tuple[int, str]:
        raw = request.query_params.get("limit")
        limit = DEFAULT_LIMIT
        if raw is not None:
            limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 8 else 0
            if not 1 <= limit <= MAX_LIMIT:
                raise GatewayError(
                    400,
                    "invalid_request_error",
                    f"limit: must be a whole number from 1 to {MAX_LIMIT}",
                    param="limit",
                )
        return limit, decode_cursor(request.query_params.get("cursor"))

    # -- routes --------------------------------------------------------------------------
    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type=_JSON)

    async def create_tenant(self, request: Request) -> Response:
        spec = await self._body(request, TenantCreate)
        return _json(await self.directory.create_tenant(spec), 201)

    async def list_tenants(self, request: Request) -> Response:
        limit, after = self._page(request)
        rows = await self.directory.list_tenants(limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(rows[-1].name) if more else None
        return _json(TenantList(data=rows, next_cursor=cursor))

    async def get_tenant(self, request: Request) -> Response:
        name = request.path_params["name"]
        tenant = await self.directory.get_tenant(name)
        if tenant is None:
            raise _not_found("no such tenant", "name")
        return _json(tenant)

    async def patch_tenant(self, request: Request) -> Response:
        patch = await self._body(request, TenantPatch)
        tenant = await self.directory.update_tenant(request.path_params["name"], patch)
        if tenant is None:
            raise _not_found("no such tenant", "name")
        return _json(tenant)

    async def delete_tenant(self, request: Request) -> Response:
        if not await self.directory.delete_tenant(request.path_params["name"]):
            raise _not_found("no such tenant", "name")
        return Response(status_code=204)

    async def create_key(self, request: Request) -> Response:
        spec = await self._body(request, KeyCreate)
        created = await self.directory.create_key(spec)
        return _json(created, 201, {"cache-control": "no-store"})

    async def list_keys(self, request: Request) -> Response:
        limit, after = self._page(request)
        tenant = request.query_params.get("tenant")
        if tenant is not None and await self.directory.get_tenant(tenant) is None:
            raise _not_found("no such tenant", "tenant")
        rows = await self.directory.list_keys(tenant, limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(rows[-1].id) if more else None
        return _json(KeyList(data=rows, next_cursor=cursor))

    async def revoke_key(self, request: Request) -> Response:
        if not await self.directory.revoke_key(request.path_params["id"]):
            raise _not_found("no such key", "id")
        return Response(status_code=204)
