"""Real servers on loopback for tests: the gateway on hypercorn and scriptable fake
upstreams, each on a port the OS chooses. No sleeps: readiness is a listening socket
bound before the server starts, shutdown is an event."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from interlock.core.app import create_app
from interlock.core.config import load_config, parse_config
from interlock.core.sse import parse_event

GUARD = 10.0  # seconds: a guard against hangs, never a wait for something to happen


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Run `app` on hypercorn in this loop; yields `http://127.0.0.1:PORT`."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 2.0
    stop = asyncio.Event()
    task = asyncio.ensure_future(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, GUARD)
        sock.detach()  # hypercorn owns and closed the descriptor


# -- the gateway ----------------------------------------------------------------------------
def gateway_config(toml: str, tmp_path: Path) -> Any:
    """A Config from TOML text; relative plugin paths resolve against `tmp_path`."""
    import tomllib

    path = tmp_path / "plugins.toml"
    path.write_text(toml)
    if "[store]" not in toml:
        toml += f'\n[store]\nurl = "sqlite:///{tmp_path / "interlock.db"}"\n'
        path.write_text(toml)
    return parse_config(tomllib.loads(toml), source=str(path), base_dir=str(tmp_path))


async def start_up_error(toml: str, tmp_path: Path) -> str:
    """The message of the ConfigError a gateway with `toml` raises while it is built or
    opened (plugins check their tables in both places); fails when none is raised."""
    from interlock.core import ConfigError

    try:
        gateway = create_app(gateway_config(toml, tmp_path)).state.gateway
        try:
            await gateway.open()
        finally:
            await gateway.close()
    except ConfigError as err:
        return str(err)
    raise AssertionError("no ConfigError was raised")


@contextlib.asynccontextmanager
async def run_gateway(toml: str, tmp_path: Path) -> AsyncIterator[str]:
    app = create_app(gateway_config(toml, tmp_path))
    async with serve_asgi(app) as url:
        yield url


__all__ = [
    "FakeUpstream",
    "RawResponse",
    "Reply",
    "gateway_config",
    "load_config",
    "local_plugin",
    "raw_connect",
    "read_response",
    "request_lines",
    "run_gateway",
    "serve_asgi",
    "sse",
    "sse_events",
    "start_up_error",
    "threaded_gateway",
]


def local_plugin(tmp_path: Path, name: str, body: str, prelude: str = "") -> str:
    """Write a local-file plugin class `P` named `name` whose class body is `body`
    (after `prelude`, module-level code such as imports of the test's recording lists);
    returns its `[plugins.NAME]` table."""
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent("""
        import asyncio
        from interlock.core import hookimpl, Plugin, GatewayError, RoutingDecision, Candidate, ReadyResponse
        """)
        + textwrap.dedent(prelude)
        + f"\n\nclass P(Plugin):\n    name = {name!r}\n"
        + textwrap.indent(textwrap.dedent(body), "    ")
    )
    return f'\n[plugins.{name}]\npath = "{path}"\n'


def request_lines(output: str) -> list[dict[str, Any]]:
    """The gateway's one-per-request log lines (`"event": "request"`) in its JSON output."""
    lines = [msgspec.json.decode(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "request"]


# -- raw HTTP/1.1, for what a client library would hide (partial bodies, early answers) ------
@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """One HTTP/1.1 response: its head, then a body of `content-length` bytes or chunks."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), GUARD)
    else:
        parts = []
        while size := int((await asyncio.wait_for(reader.readline(), GUARD)).strip(), 16):
            parts.append(await asyncio.wait_for(reader.readexactly(size + 2), GUARD))
        body = b"".join(p[:-2] for p in parts)
    return RawResponse(int(status_line.split()[1]), headers, body)


# -- fake upstreams -------------------------------------------------------------------------
@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    chunks: AsyncIterator[bytes] | None = None

    @classmethod
    def json(cls, doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        h = {"content-type": "application/json", **(headers or {})}
        return cls(status, msgspec.json.encode(doc), h)

    @classmethod
    def sse(cls, chunks: AsyncIterator[bytes]) -> Reply:
        return cls(200, b"", {"content-type": "text/event-stream"}, chunks)


Handler = Callable[[Recorded], Reply | Awaitable[Reply]]


class FakeUpstream:
    """A provider on loopback whose answers each test scripts with `on(path, handler)`.

    It records every request. `stream_closed` is set when a reply (streamed or not) was
    cut short because the gateway went away: the proof that a client's disconnect
    reached the provider. `stream_finished` is set when a reply went out whole.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.handlers: dict[str, Handler] = {}
        self.stream_closed = asyncio.Event()
        self.stream_finished = asyncio.Event()

    def on(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        query = scope["query_string"].decode()
        rec = Recorded(scope["method"], scope["path"], query, headers, body)
        self.requests.append(rec)
        work = asyncio.ensure_future(self._respond(rec, send))
        gone = asyncio.ensure_future(_disconnected(receive))
        done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            gone.cancel()
            self.stream_finished.set()
            work.result()
            return
        # The gateway went away before the reply was complete: stop, as a provider does.
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        self.stream_closed.set()

    async def _respond(self, rec: Recorded, send: Any) -> None:
        handler = self.handlers.get(rec.path)
        if handler is None:
            reply = Reply.json({"error": {"message": "no such path", "type": "not_found"}}, 404)
        else:
            result = handler(rec)
            reply = await result if asyncio.iscoroutine(result) else result  # type: ignore[assignment]
        raw_headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        if reply.chunks is None:
            await send({"type": "http.response.body", "body": reply.body})
            return
        async for chunk in reply.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@contextlib.asynccontextmanager
async def fake_upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream()
    async with serve_asgi(upstream) as url:
        yield upstream, url


def sse(doc: Any) -> bytes:
    return b"data: " + msgspec.json.encode(doc) + b"\n\n"


def sse_events(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, decoded data) of each SSE event; `[DONE]` stays bytes."""
    out: list[tuple[str | None, Any]] = []
    for event in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not event.strip():
            continue
        name, data = parse_event(event)
        out.append((name, data if data == b"[DONE]" else msgspec.json.decode(data)))
    return out


# -- one gateway for a whole test module -----------------------------------------------------
@contextlib.contextmanager
def threaded_gateway(
    toml_for: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[FakeUpstream, str]]:
    """A fake upstream and a gateway in front of it (`toml_for(upstream_url)`), served by
    their own event loop in a thread, so many small synchronous tests (httpx.Client) share
    one gateway instead of starting one each. Yields `(fake, gateway_url)`."""
    ready: concurrent.futures.Future[tuple[FakeUpstream, str]] = concurrent.futures.Future()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        try:
            async with fake_upstream() as (fake, url), run_gateway(toml_for(url), tmp_path) as gw:
                ready.set_result((fake, gw))
                await stop[0].wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield ready.result(GUARD)
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(GUARD)
        loop.close()
