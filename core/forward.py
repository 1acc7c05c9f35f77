"""The one small interface the core uses to talk to upstreams, and its implementations.

Providers code against `UpstreamClient.send()`: a request goes out, a status, lower-case
headers and either the whole body or an async byte stream come back. Which HTTP library
sits underneath is a measured choice (bench/), not a design decision:

- `HttpxClient`: httpx's `AsyncClient`, the design card's client, over httpcore or, with
  `transport="aiohttp"`, over `httpx-aiohttp`'s transport (same API, less CPU).
- `AiohttpClient`: aiohttp directly, the fast option.

Every library error is mapped here to `UpstreamTimeout` or `UpstreamUnreachable`, so no
caller catches an httpx or aiohttp exception and no traceback carries request headers.
No client ever follows a redirect: a 3xx is returned as it is (the adapter refuses it),
so a provider's key and the prompt never go to an address that is not in plugins.toml.
This module must never log: the headers it sends carry provider keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal, Protocol

import httpx

from .errors import UpstreamTimeout, UpstreamUnreachable

__all__ = [
    "AiohttpClient",
    "ClientSettings",
    "HttpxClient",
    "UpstreamClient",
    "UpstreamResponse",
    "make_client",
]


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...
    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        stream: bool,
    ) -> UpstreamResponse:
        """Send one request. With `stream=False` the body is read before returning.

        Raises `UpstreamTimeout` or `UpstreamUnreachable`; never a library exception.
        """
        ...

    async def aclose(self) -> None: ...


class ClientSettings:
    """Pool and timeout settings of one provider's client."""

    __slots__ = ("connect_timeout", "max_connections", "max_keepalive", "name", "read_timeout")

    def __init__(
        self,
        name: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 600.0,
        max_connections: int = 512,
        max_keepalive: int = 128,
    ) -> None:
        self.name = name
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive


# -- httpx --------------------------------------------------------------------------------
class _HttpxResponse:
    __slots__ = ("_body", "_name", "_resp", "headers", "status")

    def __init__(self, resp: httpx.Response, name: str, body: bytes | None) -> None:
        self._resp = resp
        self._name = name
        self._body = body
        self.status = resp.status_code
        self.headers: Mapping[str, str] = resp.headers

    async def read(self) -> bytes:
        if self._body is None:
            try:
                self._body = await self._resp.aread()
            except httpx.HTTPError as exc:
                raise _map_httpx(exc, self._name) from None
        return self._body

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            raise _map_httpx(exc, self._name) from None

    async def aclose(self) -> None:
        await self._resp.aclose()


def _map_httpx(exc: httpx.HTTPError, name: str) -> UpstreamTimeout | UpstreamUnreachable:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return UpstreamUnreachable(name, "connect timeout")
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(name)
    if isinstance(exc, httpx.ConnectError):
        return UpstreamUnreachable(name, "connection refused")
    return UpstreamUnreachable(name, type(exc).__name__)


class HttpxClient:
    """One pooled `httpx.AsyncClient` per provider: keep-alive, HTTP/1.1."""

    def __init__(
        self, settings: ClientSettings, *, transport: Literal["httpcore", "aiohttp"] = "httpcore"
    ) -> None:
        self.name = settings.name
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive,
            keepalive_expiry=30.0,
        )
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.connect_timeout,
        )
        # follow_redirects=False (httpx's default, said out loud): a redirect would re-send
        # the body and the provider's key to wherever the Location points.
        kwargs: dict[str, Any] = {
            "limits": limits,
            "timeout": timeout,
            "trust_env": False,
            "follow_redirects": False,
        }
        if transport == "aiohttp":
            from httpx_aiohttp import AiohttpTransport  # the `fast` extra

            kwargs["transport"] = AiohttpTransport(limits=limits, trust_env=False)
        # trust_env=False: no proxy or netrc from the environment decides where keys go.
        self._client = httpx.AsyncClient(**kwargs)

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        stream: bool,
    ) -> UpstreamResponse:
        request = self._client.build_request(method, url, headers=headers, content=body)
        try:
            resp = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _map_httpx(exc, self.name) from None
        wrapped = _HttpxResponse(resp, self.name, None)
        if not stream:
            try:
                await wrapped.read()
            finally:
                await resp.aclose()
        return wrapped

    async def aclose(self) -> None:
        await self._client.aclose()


# -- aiohttp ------------------------------------------------------------------------------
class _AiohttpResponse:
    __slots__ = ("_body", "_name", "_resp", "headers", "status")

    def __init__(self, resp: Any, name: str) -> None:
        self._resp = resp
        self._name = name
        self._body: bytes | None = None
        self.status: int = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self) -> bytes:
        if self._body is None:
            try:
                self._body = await self._resp.read()
            except Exception as exc:
                raise _map_aiohttp(exc, self._name) from None
        return self._body

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except Exception as exc:
            raise _map_aiohttp(exc, self._name) from None

    async def aclose(self) -> None:
        self._resp.close()


def _map_aiohttp(exc: Exception, name: str) -> Exception:
    import asyncio

    import aiohttp

    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamUnreachable(name, "connect timeout")
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(name)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnreachable(name, "connection refused")
    if isinstance(exc, aiohttp.ClientError):
        return UpstreamUnreachable(name, type(exc).__name__)
    return exc


class AiohttpClient:
    """aiohttp used directly: the measured fast option (installed with the `fast` extra)."""

    def __init__(self, settings: ClientSettings) -> None:
        import aiohttp

        self.name = settings.name
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
        )
        self._settings = settings
        self._session: Any = None

    def _open(self) -> Any:
        import aiohttp

        # Created lazily: an aiohttp session must be made inside the running loop.
        connector = aiohttp.TCPConnector(
            limit=self._settings.max_connections, keepalive_timeout=30.0, use_dns_cache=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            trust_env=False,
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        stream: bool,
    ) -> UpstreamResponse:
        session = self._session or self._open()
        try:
            # aiohttp follows redirects unless told not to, re-sending the key elsewhere.
            resp = await session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            )
        except Exception as exc:
            raise _map_aiohttp(exc, self.name) from None
        wrapped = _AiohttpResponse(resp, self.name)
        if not stream:
            try:
                await wrapped.read()
            finally:
                resp.release()
        return wrapped

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_client(kind: str, settings: ClientSettings) -> UpstreamClient:
    """`kind` is `[server] client`: "httpx", "httpx-aiohttp" or "aiohttp"."""
    if kind == "aiohttp":
        return AiohttpClient(settings)
    if kind == "httpx-aiohttp":
        return HttpxClient(settings, transport="aiohttp")
    return HttpxClient(settings)
