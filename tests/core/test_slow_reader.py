"""A client that stops reading must not make the gateway buffer the upstream's stream.

The gateway reads from the upstream only as fast as it writes to the client, so when the
client stops, the upstream is held back by the sockets' buffers and produces a bounded
number of bytes. Measured in bytes the upstream managed to send, never in time: the
gateway, the upstream and the client share one event loop, so "nothing moves any more"
is many loop turns in a row in which no byte was produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from tests.conftest import CLIENTS
from tests.core.test_proxy_openai import config
from tests.support import GUARD, Reply, run_gateway

EVENT = b"data: " + b'{"choices":[{"index":0,"delta":{"content":"' + b"x" * 65_000 + b'"}}]}\n\n'
EVENTS = 4096  # about 256 MB if nothing held the upstream back
BOUND = 64 * 1024 * 1024  # kernel socket buffers on loopback are a few MB each


async def _quiet(counter: list[int], turns: int = 2000) -> None:
    """Return once `turns` loop iterations in a row saw no new upstream byte."""
    still = 0
    last = -1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    while still < turns and loop.time() < deadline:
        await asyncio.sleep(0)  # one loop turn: ready I/O is handled, nothing waits on a clock
        if counter[0] == last:
            still += 1
        else:
            last, still = counter[0], 0


@pytest.mark.parametrize("client_kind", CLIENTS)
async def test_stalled_client_holds_back_upstream(
    upstream, tmp_path: Path, client_kind: str
) -> None:
    fake, url = upstream
    produced = [0]

    async def flood() -> AsyncIterator[bytes]:
        for _ in range(EVENTS):
            produced[0] += len(EVENT)
            yield EVENT
        yield b"data: [DONE]\n\n"

    fake.on("/v1/chat/completions", lambda r: Reply.sse(flood()))
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with run_gateway(config(url, client=client_kind), tmp_path) as gw:
        # A raw socket, so no client library reads ahead on the test's behalf.
        reader, writer = await asyncio.open_connection("127.0.0.1", int(gw.rsplit(":", 1)[1]))
        payload = msgspec.json.encode(body)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload
        )
        first = await asyncio.wait_for(reader.read(1000), GUARD)
        assert first.startswith(b"HTTP/1.1 200")
        await _quiet(produced)  # the client reads nothing more
        assert produced[0] < BOUND, f"upstream sent {produced[0]} bytes"
        assert not fake.stream_finished.is_set()
        writer.close()
