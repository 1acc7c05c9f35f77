"""The proxy endpoints: read the body, decode it, run the pipeline, write the answer.

Plain ASGI work (never `BaseHTTPMiddleware`): the body is read with a size limit as it
arrives, streams go out chunk by chunk with nothing buffered, and a client that
disconnects cancels the upstream request. The request's context, `pre_auth` and the one
`post_response` belong to the lifecycle (lifecycle.py) that calls `handle`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from .context import RequestContext
from .disconnect import Sweeper, Watch
from .errors import GatewayError, ReportedInStream
from .exchange import Exchange
from .inbound import InboundFormat, tags_from
from .shutdown import DRAIN

if TYPE_CHECKING:
    from .app import Gateway

__all__ = ["ClientGone", "ProxyEndpoint", "read_body"]

_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")


class ClientGone(GatewayError):
    def __init__(self) -> None:
        super().__init__(499, "client_disconnected", "the client closed the connection")


class ProxyEndpoint:
    """One proxy route (chat, embeddings, messages) for one inbound wire format."""

    def __init__(self, gateway: Gateway, inbound: InboundFormat) -> None:
        self.gateway = gateway
        self.inbound = inbound
        self.max_body = gateway.max_body
        self._sweeper = Sweeper()
        # Optional steps of a format that keeps state across requests (Responses: the
        # stored conversation): `resolve(ctx)` after the body is decoded, `remember(ctx)`
        # after a non-streamed answer is rendered and before it is sent.
        self._resolve: Callable[[RequestContext], Awaitable[None]] | None = getattr(
            inbound, "resolve", None
        )
        self._remember: Callable[[RequestContext], Awaitable[None]] | None = getattr(
            inbound, "remember", None
        )

    async def handle(self, ctx: RequestContext, receive: Any, ex: Exchange) -> None:
        """Serve one request whose `pre_auth` has passed; raise `GatewayError` to refuse
        (the lifecycle renders it) and `ClientGone` when the client left."""
        inbound = self.inbound
        content_type = ctx.headers.get("content-type")
        if content_type is not None and not _is_json(content_type):
            # Read (and drop) the body first: answering with it unread makes the server
            # close the connection, and the client often gets a reset instead of the 415
            # (found by tests/core/test_fuzz.py).
            try:
                await read_body(receive, ctx.headers, self.max_body)
            except ClientGone:
                raise
            except GatewayError:
                pass  # empty or too large: the 415 is still the answer
            raise GatewayError(
                415,
                "invalid_request_error",
                f"Content-Type must be application/json, not '{content_type[:100]}'",
            )
        raw = await read_body(receive, ctx.headers, self.max_body)
        decoded = inbound.decode(raw, ctx.headers)
        ctx.set_body(
            decoded.raw, decoded.head, stream=decoded.stream, include_usage=decoded.include_usage
        )
        ctx.wire = decoded.wire
        headers = ctx.headers
        metadata = getattr(decoded.head, "metadata", None)
        if metadata is not None or "x-interlock-tags" in headers or "x-feature" in headers:
            ctx.tags = tags_from(headers, metadata)
        if self._resolve is not None:
            await self._resolve(ctx)
        task = asyncio.current_task()
        assert task is not None
        watch = Watch(receive, task, ctx)
        sweeper = self._sweeper
        sweeper.add(watch)
        pipeline = self.gateway.pipeline
        try:
            await pipeline.prepare(ctx)
            if ctx.stream:
                await self._stream(ctx, ex)
            else:
                body = inbound.render(ctx, await pipeline.complete(ctx))
                if self._remember is not None:
                    await self._remember(ctx)
                await ex.json(ctx.status or 200, body)
                ctx.timings["ttfb_ms"] = ctx.elapsed_ms()
        except asyncio.CancelledError:
            if watch.gone:
                task.uncancel()
                raise ClientGone() from None
            if ctx.expired:  # the deadline's cancel landed just after an attempt ended
                task.uncancel()
                raise GatewayError(
                    504, "deadline_exceeded", "the request was not answered within its deadline"
                ) from None
            raise
        finally:
            sweeper.remove(watch)
            watch.stop()

    async def _stream(self, ctx: RequestContext, ex: Exchange) -> None:
        handle = await self.gateway.pipeline.open_stream(ctx)
        inbound = self.inbound
        send = ex.send
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": ctx.status or 200,
                    "headers": ex.headers(inbound.stream_headers),
                }
            )
            first = True
            try:
                # Past the shutdown drain deadline this raises ShuttingDown: the stream
                # ends with an error event below (core/shutdown.py).
                with DRAIN.bounded():
                    async for chunk in inbound.render_stream(ctx, handle.events):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        if first:
                            ctx.timings["ttfb_ms"] = ctx.elapsed_ms()
                            first = False
            except GatewayError as err:
                # The stream died after the first byte: tell the client in the stream
                # itself, so the end does not look like a clean finish (unless the format
                # already did, in its own events).
                ctx.fail(err, err.status)
                if not isinstance(err, ReportedInStream):
                    await send(
                        {
                            "type": "http.response.body",
                            "body": inbound.stream_error(err),
                            "more_body": True,
                        }
                    )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await handle.aclose()


def _is_json(content_type: str) -> bool:
    """`application/json` or any `+json` type (charset and other parameters aside); a
    missing Content-Type stays accepted, as OpenAI does."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def read_body(receive: Any, headers: dict[str, str], limit: int) -> bytes:
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
