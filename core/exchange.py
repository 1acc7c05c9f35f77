"""One HTTP exchange as the lifecycle sees it: what has been sent, and the held-back end.

Every response's final ASGI message (the body of a JSON answer, the closing empty chunk
of a stream) is held here until `post_response` has run, whenever a plugin implements
it: "the client received the whole response" then implies "its audit record is
committed and its budget settled". With no post_response plugin nothing is held.
"""

from __future__ import annotations

from typing import Any

from .context import RequestContext

__all__ = ["Exchange"]

_JSON = (b"content-type", b"application/json")


class Exchange:
    __slots__ = ("ctx", "hold", "raw_send", "started", "tail")

    def __init__(self, send: Any, ctx: RequestContext, hold: bool) -> None:
        self.raw_send = send
        self.ctx = ctx
        self.hold = hold
        self.started = False
        self.tail: dict[str, Any] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        """An ASGI `send` that records the status and holds back the final message."""
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            if not self.ctx.status:
                self.ctx.status = message["status"]
        elif kind == "http.response.body" and self.hold and not message.get("more_body"):
            self.tail = message
            return
        await self.raw_send(message)

    def headers(self, base: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """`base`, then `x-request-id`, then what plugins added with `ctx.add_header`."""
        ctx = self.ctx
        out = [*base, (b"x-request-id", ctx.request_id.encode())]
        if ctx.response_headers:
            out.extend(
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in ctx.response_headers.items()
            )
        return out

    async def json(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        headers = self.headers([_JSON, (b"content-length", str(len(body)).encode())])
        if extra:
            headers.extend(
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()
            )
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def complete(self) -> None:
        """Send the held-back end, after post_response, unless the client is gone."""
        tail, self.tail = self.tail, None
        if tail is not None and self.ctx.status != 499:
            await self.raw_send(tail)
