"""Interlock's own machinery per request, with the network taken out: `python -m bench.inprocess`.

The app is called as an ASGI callable in one event loop, and the provider's upstream
client is replaced by one that answers a canned chat.completion at once, so the figure
is what the gateway itself costs (Starlette routing, decoding, the context, the hook
plans, forwarding bookkeeping, pricing, the log line), without sockets, servers or the
noise of a shared VM. It runs with no plugins and with the trivial plugin on four
hooks, so the difference is the hook machinery's price. Prints CPU µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tomllib
from pathlib import Path
from typing import Any

from bench.payloads import COMPLETION, REQUEST, encoded
from interlock.core.app import create_app
from interlock.core.config import parse_config

BENCH = Path(__file__).resolve().parent
BASE = """
[[providers]]
name = "up"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-bench"
models = ["{model}"]
"""


class _Canned:
    status = 200
    headers = {"content-type": "application/json"}

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def aclose(self) -> None:
        return None


class _CannedClient:
    """Stands in for the upstream client: the same answer, no I/O."""

    def __init__(self, body: bytes) -> None:
        self._reply = _Canned(body)

    async def send(self, *args: Any, **kwargs: Any) -> _Canned:
        return self._reply

    async def aclose(self) -> None:
        return None


async def per_request_us(plugins: str, n: int, tmp: Path) -> float:
    import time

    body = encoded(REQUEST)
    model = REQUEST["model"]
    toml = BASE.format(model=model) + f'\n[store]\nurl = "sqlite:///{tmp}/bench.db"\n' + plugins
    app = create_app(parse_config(tomllib.loads(toml), source="bench", base_dir=str(BENCH)))
    gateway = app.state.gateway
    await gateway.start()  # what the lifespan does: store, counters, plugins, plans
    gateway.log_setup.writer._stream = io.BytesIO()  # the log line is still made and queued
    gateway.providers["up"].client = _CannedClient(encoded(COMPLETION))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(min(n, 2000)):  # warm-up: caches, the default route, allocator
        await app(dict(scope), receive, send)
    start = time.process_time()
    for _ in range(n):
        await app(dict(scope), receive, send)
    us = (time.process_time() - start) / n * 1e6
    await gateway.close(hooks=True)
    gateway.log_setup.close()
    return us


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="requests per measurement")
    args = parser.parse_args()
    trivial = f'\n[plugins.trivial]\npath = "{BENCH}/plugins/trivial.py"\n'
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    with tempfile.TemporaryDirectory() as tmp:
        bare = run(per_request_us("", args.n, Path(tmp)))
        hooks = run(per_request_us(trivial, args.n, Path(tmp)))
    print(f"Interlock in-process, canned upstream, {args.n:,} requests:")
    print(f"  no plugins                  {bare:6.1f} µs CPU per request")
    print(f"  trivial plugin on 4 hooks   {hooks:6.1f} µs CPU per request ({hooks - bare:+.1f} µs)")


if __name__ == "__main__":
    main()
