"""The drain (core/shutdown.py): when its deadline passes, open streams end with an error
event in the caller's format; other cancellations are left alone. In process, on one
event loop: the deadline is 0 or the test calls `expire()`, so nothing waits on a clock.
Real signals against real server processes are in test_signals.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from interlock.core.shutdown import DRAIN, Drain, ShuttingDown
from tests.support import GUARD, run_gateway

# The mock's second chunk would come an hour after the first: only the drain ends it.
SLOW = """
[[providers]]
name = "mock"
kind = "mock"
models = ["*"]
chunk_delay_ms = 3_600_000
"""


@pytest.fixture
def drain() -> Iterator[Drain]:
    yield DRAIN
    DRAIN.reset()


async def _bounded_forever(drain: Drain, started: asyncio.Event) -> None:
    with drain.bounded():
        started.set()
        await asyncio.Event().wait()


async def test_expiry_turns_the_cancellation_of_an_open_stream_into_shutting_down() -> None:
    drain = Drain()
    started = asyncio.Event()
    task = asyncio.ensure_future(_bounded_forever(drain, started))
    await asyncio.wait_for(started.wait(), GUARD)
    drain.expire()
    with pytest.raises(ShuttingDown) as caught:
        await asyncio.wait_for(task, GUARD)
    assert (caught.value.status, caught.value.type) == (503, "shutting_down")
    assert task.cancelling() == 0  # the cancellation was withdrawn, not left pending


async def test_a_cancellation_that_is_not_the_drain_stays_a_cancellation() -> None:
    drain = Drain()
    started = asyncio.Event()
    task = asyncio.ensure_future(_bounded_forever(drain, started))
    await asyncio.wait_for(started.wait(), GUARD)
    task.cancel()  # a client that went away
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, GUARD)
    drain.expire()  # later: nothing of that stream is left to cut
    assert not drain._open and not drain._cut


async def test_a_stream_that_starts_after_the_deadline_is_refused_at_once() -> None:
    drain = Drain()
    drain.expire()
    with pytest.raises(ShuttingDown), drain.bounded():
        pytest.fail("the body must not run")


async def test_begin_schedules_the_deadline_once() -> None:
    drain = Drain()
    drain.begin(3600)
    timer = drain._timer
    drain.begin(0)  # the same signal delivered twice changes nothing
    assert drain.draining and not drain.expired and drain._timer is timer
    drain.reset()
    assert not drain.draining and timer is not None and timer.cancelled()


async def test_begin_with_a_zero_timeout_cuts_open_streams(drain: Drain) -> None:
    started = asyncio.Event()
    task = asyncio.ensure_future(_bounded_forever(drain, started))
    await asyncio.wait_for(started.wait(), GUARD)
    drain.begin(0)
    with pytest.raises(ShuttingDown):
        await asyncio.wait_for(task, GUARD)


@pytest.mark.parametrize(
    ("path", "body", "error_event"),
    [
        (
            "/v1/chat/completions",
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            b'data: {"error":{"message":"the gateway is shutting down; retry the request",'
            b'"type":"shutting_down","param":null,"code":"shutting_down"}}\n\n',
        ),
        (
            "/v1/messages",
            {
                "model": "m",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
            b'"message":"the gateway is shutting down; retry the request"}}\n\n',
        ),
    ],
    ids=["openai", "anthropic"],
)
async def test_an_open_stream_ends_with_an_error_event_in_the_callers_format(
    drain: Drain, tmp_path: Path, path: str, body: dict[str, object], error_event: bytes
) -> None:
    async with run_gateway(SLOW, tmp_path) as gw, httpx.AsyncClient(timeout=GUARD) as client:
        async with client.stream("POST", gw + path, json=body) as resp:
            assert resp.status_code == 200
            chunks = resp.aiter_bytes()
            received = await asyncio.wait_for(anext(chunks), GUARD)
            drain.begin(0)
            received += b"".join([c async for c in chunks])
    assert received.endswith(error_event)
    assert b"[DONE]" not in received and b"message_stop" not in received
    # The event is one well-formed SSE event carrying JSON.
    msgspec.json.decode(error_event.rsplit(b"data: ", 1)[1])
