"""A provider's error event mid-stream: what came before it goes out first, however the
network split the stream into chunks (one chunk, or one byte at a time)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from interlock.core.config import ProviderConfig
from interlock.core.context import RequestContext
from interlock.core.errors import UpstreamError
from interlock.core.providers.anthropic import AnthropicProvider
from tests.providers.test_golden import context as golden_context

STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","content":[],"model":"m","usage":{"input_tokens":9,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hel"}}\n\n'
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)


def context() -> RequestContext:
    return golden_context(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, stream=True
    )


@pytest.mark.parametrize("size", [len(STREAM), 1, 7])
async def test_events_before_an_error_are_relayed_whatever_the_chunking(size: int) -> None:
    provider = AnthropicProvider(
        ProviderConfig(name="c", kind="anthropic", api_key="k", models=["m"])
    )

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(STREAM), size):
            yield STREAM[i : i + size]

    out = b""
    with pytest.raises(UpstreamError) as caught:
        async for piece in provider.chat_events(context(), "m", chunks()):
            out += piece
    assert b'"Hel"' in out
    assert caught.value.status == 503 and caught.value.retryable
    await provider.aclose()
