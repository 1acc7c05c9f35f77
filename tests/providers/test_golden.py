"""Golden fixtures written from the providers' published docs, checked both ways.

Each `request.*` pair is one conversation in two wire formats: the outbound adapter must
turn the canonical one into the provider's, and (for Anthropic) the inbound format must
turn the provider's back into the canonical one. Each `response.*` pair likewise, and
each `stream.sse` is fed in chunks of 1 to 3 bytes, so every event, and every multi-byte
UTF-8 character, is split across network chunks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from interlock.core.config import ProviderConfig
from interlock.core.context import ChatHead, RequestContext, Usage
from interlock.core.inbound_anthropic import AnthropicMessages
from interlock.core.inbound_anthropic.request import canonical_request
from interlock.core.providers.anthropic import AnthropicProvider
from interlock.core.providers.azure import AzureProvider
from interlock.core.providers.base import HttpProvider
from interlock.core.providers.gemini import GeminiProvider
from interlock.core.sse import parse_event

FIXTURES = Path(__file__).with_name("fixtures")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def context(canonical: Any, *, stream: bool = False, include_usage: bool = False) -> RequestContext:
    raw = msgspec.json.encode(canonical)
    ctx = RequestContext(
        request_id="req1",
        inbound="openai",
        endpoint="chat",
        path="/v1/chat/completions",
        headers={},
        client=None,
    )
    ctx.set_body(
        raw, msgspec.json.decode(raw, type=ChatHead), stream=stream, include_usage=include_usage
    )
    return ctx


@pytest.fixture
async def providers() -> AsyncIterator[dict[str, HttpProvider]]:
    made: dict[str, HttpProvider] = {
        "anthropic": AnthropicProvider(
            ProviderConfig(
                name="claude",
                kind="anthropic",
                base_url="https://api.anthropic.com/v1",
                api_key="sk-ant-key",
            )
        ),
        "gemini": GeminiProvider(
            ProviderConfig(name="gemini", kind="gemini", api_key="AIzaSyTestKey0000000000")
        ),
    }
    yield made
    for provider in made.values():
        await provider.aclose()


def tiny_chunks(data: bytes) -> Iterator[bytes]:
    sizes = (1, 2, 3)
    i = n = 0
    while i < len(data):
        size = sizes[n % 3]
        yield data[i : i + size]
        i += size
        n += 1


async def feed(data: bytes) -> AsyncIterator[bytes]:
    for piece in tiny_chunks(data):
        yield piece


def events_of(stream: bytes) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for raw in stream.replace(b"\r\n", b"\n").split(b"\n\n"):
        if raw.strip():
            name, data = parse_event(raw + b"\n\n")
            out.append((name, "[DONE]" if data == b"[DONE]" else json.loads(data)))
    return out


def canonical_shape(stream: bytes) -> list[Any]:
    """Canonical chunks without ids and timestamps: `[delta, finish]`, usage, [DONE]."""
    shape: list[Any] = []
    for _, doc in events_of(stream):
        if doc == "[DONE]":
            shape.append(doc)
        elif doc["choices"]:
            choice = doc["choices"][0]
            shape.append([choice["delta"], choice["finish_reason"]])
        else:
            shape.append({"usage": doc["usage"]})
    return shape


def with_parsed_arguments(doc: Any) -> Any:
    """Tool-call arguments compared as JSON values (spacing is the provider's)."""
    for choice in doc["choices"]:
        for call in choice["message"].get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    doc.pop("created", None)
    return doc


async def collect(events: AsyncIterator[bytes]) -> bytes:
    return b"".join([e async for e in events])


# -- Anthropic ------------------------------------------------------------------------------
def test_anthropic_request_both_ways(providers: dict[str, HttpProvider]) -> None:
    canonical = load("anthropic/request.canonical.json")
    anthropic = load("anthropic/request.anthropic.json")
    url, headers, body = providers["anthropic"].chat_request(
        context(canonical), "claude-sonnet-4-6", False
    )
    assert url == "https://api.anthropic.com/v1/messages"
    assert headers["x-api-key"] == "sk-ant-key"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert json.loads(body) == anthropic
    # ... and back: the inbound Anthropic format keeps the client's bytes (served natively
    # by an `anthropic` provider) and translates to the canonical request for any other.
    raw = msgspec.json.encode(anthropic)
    decoded = AnthropicMessages().decode(raw, {})
    assert decoded.raw == raw and decoded.wire == "anthropic"
    assert decoded.head.model == "claude-sonnet-4-6"
    back, _ = canonical_request(raw)
    assert json.loads(back) == canonical


def test_anthropic_default_max_tokens(providers: dict[str, HttpProvider]) -> None:
    ctx = context({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    _, _, body = providers["anthropic"].chat_request(ctx, "m", True)
    sent = json.loads(body)
    assert sent["max_tokens"] == 4096
    assert sent["stream"] is True


def test_anthropic_response_both_ways(providers: dict[str, HttpProvider]) -> None:
    anthropic_body = (FIXTURES / "anthropic/response.anthropic.json").read_bytes()
    ctx = context({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "x"}]})
    canonical = json.loads(
        providers["anthropic"].chat_response(ctx, "claude-sonnet-4-6", anthropic_body)
    )
    assert with_parsed_arguments(canonical) == with_parsed_arguments(
        load("anthropic/response.canonical.json")
    )
    assert ctx.usage == Usage(
        prompt_tokens=5946, completion_tokens=503, cached_tokens=1800, cache_write_tokens=2051
    )
    # ... and back: the inbound format renders the canonical answer as Anthropic's.
    ctx.requested_model = "claude-sonnet-4-6"
    rendered = json.loads(
        AnthropicMessages().render(
            ctx, msgspec.json.encode(load("anthropic/response.canonical.json"))
        )
    )
    assert rendered == load("anthropic/response.anthropic.json")


async def test_anthropic_stream_both_ways(providers: dict[str, HttpProvider]) -> None:
    sse = (FIXTURES / "anthropic/stream.sse").read_bytes()
    ctx = context({"model": "claude-sonnet-4-6", "messages": []}, stream=True, include_usage=True)
    out = await collect(providers["anthropic"].chat_events(ctx, "claude-sonnet-4-6", feed(sse)))
    assert canonical_shape(out) == load("anthropic/stream.canonical.json")
    assert ctx.usage == Usage(prompt_tokens=572, completion_tokens=89, cached_tokens=100)
    # ... and back: the canonical chunks rendered as Anthropic events give the original
    # blocks and deltas (pings and empty argument fragments carry nothing).
    ctx.requested_model = "claude-sonnet-4-6"
    rendered = await collect(AnthropicMessages().render_stream(ctx, feed(out)))

    def blocks(events: list[tuple[str | None, Any]]) -> list[Any]:
        kept = []
        for name, doc in events:
            if name in ("ping", "message_start", "message_delta"):
                continue
            if doc.get("delta", {}).get("partial_json") == "":
                continue
            kept.append((name, doc))
        return kept

    original = events_of(sse)
    again = events_of(rendered)
    assert blocks(again) == blocks(original)
    assert again[0][0] == "message_start"
    delta = next(doc for name, doc in again if name == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {
        "input_tokens": 472,
        "output_tokens": 89,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
    }


async def test_anthropic_stream_cut_off_raises_and_estimates(
    providers: dict[str, HttpProvider],
) -> None:
    sse = (FIXTURES / "anthropic/stream.sse").read_bytes()
    cut = sse[: sse.index(b"event: content_block_stop")]
    ctx = context({"model": "m", "messages": []}, stream=True)
    events = providers["anthropic"].chat_events(ctx, "m", feed(cut))
    got: list[bytes] = []
    with pytest.raises(Exception, match="closed the stream"):
        async for event in events:
            got.append(event)
    assert got  # what arrived was relayed before the failure
    assert ctx.usage.estimated
    assert ctx.usage.prompt_tokens == 572  # the provider's own prompt count is kept


# -- Gemini ---------------------------------------------------------------------------------
def test_gemini_request(providers: dict[str, HttpProvider]) -> None:
    ctx = context(load("gemini/request.canonical.json"))
    url, headers, body = providers["gemini"].chat_request(ctx, "gemini-2.5-flash", False)
    assert url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert headers["x-goog-api-key"] == "AIzaSyTestKey0000000000"
    assert "key=" not in url  # the key never travels in the URL
    assert json.loads(body) == load("gemini/request.gemini.json")
    stream_url, _, _ = providers["gemini"].chat_request(ctx, "gemini-2.5-flash", True)
    assert stream_url.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_gemini_response(providers: dict[str, HttpProvider]) -> None:
    body = (FIXTURES / "gemini/response.gemini.json").read_bytes()
    ctx = context({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]})
    canonical = json.loads(providers["gemini"].chat_response(ctx, "gemini-2.5-flash", body))
    assert with_parsed_arguments(canonical) == with_parsed_arguments(
        load("gemini/response.canonical.json")
    )
    assert ctx.usage == Usage(prompt_tokens=120, completion_tokens=60, cached_tokens=64)


async def test_gemini_stream(providers: dict[str, HttpProvider]) -> None:
    sse = (FIXTURES / "gemini/stream.sse").read_bytes()
    assert b"\r\n\r\n" in sse  # Gemini's own line endings
    ctx = context({"model": "gemini-2.5-flash", "messages": []}, stream=True, include_usage=True)
    out = await collect(providers["gemini"].chat_events(ctx, "gemini-2.5-flash", feed(sse)))
    assert canonical_shape(out) == load("gemini/stream.canonical.json")
    assert ctx.usage == Usage(prompt_tokens=9, completion_tokens=14)


async def test_gemini_stream_without_finish_is_an_error(
    providers: dict[str, HttpProvider],
) -> None:
    sse = (FIXTURES / "gemini/stream.sse").read_bytes()
    cut = sse[: sse.rindex(b"data: ")]
    ctx = context({"model": "g", "messages": []}, stream=True)
    with pytest.raises(Exception, match="closed the stream"):
        await collect(providers["gemini"].chat_events(ctx, "g", feed(cut)))
    assert ctx.usage.estimated


# -- Azure ----------------------------------------------------------------------------------
async def test_azure_deployment_url_and_key_header() -> None:
    provider = AzureProvider(
        ProviderConfig(
            name="azure",
            kind="azure",
            base_url="https://myres.openai.azure.com",
            api_key="azure-key",
            model_map={"gpt-4o": "gpt4o-prod"},
            options={"api_version": "2024-10-21"},
        )
    )
    try:
        ctx = context({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        url, headers, _ = provider.chat_request(ctx, "gpt-4o", False)
    finally:
        await provider.aclose()
    assert url == (
        "https://myres.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
        "?api-version=2024-10-21"
    )
    assert headers["api-key"] == "azure-key"
    assert "authorization" not in headers


def test_azure_options_refuse_unknown_keys() -> None:
    from interlock.core.config import ConfigError

    with pytest.raises(ConfigError, match="api_versoin"):
        AzureProvider(
            ProviderConfig(
                name="azure",
                kind="azure",
                base_url="https://x.openai.azure.com",
                api_key="k",
                options={"api_versoin": "2024-10-21"},
            )
        )


def test_anthropic_temperature_is_clamped_to_its_range(providers: dict[str, HttpProvider]) -> None:
    ctx = context(
        {"model": "m", "temperature": 1.6, "messages": [{"role": "user", "content": "hi"}]}
    )
    _, _, body = providers["anthropic"].chat_request(ctx, "m", False)
    assert json.loads(body)["temperature"] == 1.0
