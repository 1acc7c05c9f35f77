"""Golden fixtures from OpenAI's documentation of the Responses API, checked both ways.

Requests: each documented request translates into the canonical one (for a provider
that does not speak Responses) and passes through byte for byte to one that does.
Answers and streams: the canonical answer renders into the documented Response object
and event sequence (every documented field, same value; ids and timestamps are ours),
and the documented object and events pass through the native path untouched with their
usage read. Streams are fed 1 to 3 bytes at a time. Sources: fixtures/responses/SOURCE.md.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from interlock.core.config import ProviderConfig
from interlock.core.context import RequestContext, Usage
from interlock.core.inbound_responses import OpenAIResponses
from interlock.core.inbound_responses.request import canonical_request, translate
from interlock.core.inbound_responses.store import ResponsesStore
from interlock.core.providers.openai import OpenAIProvider
from tests.providers.test_golden import FIXTURES, collect, events_of, feed, load

RESPONSES = OpenAIResponses(ResponsesStore(60))
TEXT_REQUEST = {
    "model": "gpt-5.4",
    "input": "Tell me a three sentence bedtime story about a unicorn.",
}


def responses_context(request: Any, *, translated: bool = True) -> RequestContext:
    """A context as the endpoint leaves it for a Responses request; `translated`: as
    core/wire.py leaves it for a provider that does not speak Responses."""
    raw = msgspec.json.encode(request)
    decoded = RESPONSES.decode(raw, {})
    ctx = RequestContext(
        request_id="req1",
        inbound="responses",
        endpoint="chat",
        path="/v1/responses",
        headers={},
        client=None,
    )
    ctx.set_body(decoded.raw, decoded.head, stream=decoded.stream)
    ctx.wire = decoded.wire
    if translated:
        canonical_request(ctx, raw)
        ctx.wire = "openai"
    return ctx


class Ids:
    """Documented ids against ours: the same kind (prefix), one of ours per documented id."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def check(self, documented: str, ours: str) -> None:
        assert ours.split("_", 1)[0] == documented.split("_", 1)[0], (documented, ours)
        assert self.seen.setdefault(documented, ours) == ours, documented


def assert_documented(documented: Any, ours: Any, ids: Ids, where: str = "$") -> None:
    """Every documented field is in ours with the same value; ids map one to one and
    timestamps are ours (an integer where the documentation has one)."""
    if isinstance(documented, dict):
        assert isinstance(ours, dict), where
        for key, value in documented.items():
            assert key in ours, f"{where}.{key} is missing"
            spot = f"{where}.{key}"
            if key in ("id", "item_id") and isinstance(value, str):
                ids.check(value, ours[key])
            elif key in ("created_at", "completed_at") and value is not None:
                assert isinstance(ours[key], int), spot
            else:
                assert_documented(value, ours[key], ids, spot)
    elif isinstance(documented, list):
        assert isinstance(ours, list) and len(ours) == len(documented), where
        for i, (a, b) in enumerate(zip(documented, ours, strict=True)):
            assert_documented(a, b, ids, f"{where}[{i}]")
    else:
        assert ours == documented, f"{where}: {ours!r} != {documented!r}"


@pytest.fixture
async def openai() -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(
        ProviderConfig(name="openai", kind="openai", api_key="sk-openai-key", models=["*"])
    )
    yield provider
    await provider.aclose()


# -- requests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["request", "request_image", "request_stream"])
def test_documented_requests_translate_to_canonical(name: str) -> None:
    documented = load(f"responses/{name}.responses.json")
    canonical, _ = translate(msgspec.json.encode(documented))
    assert canonical == load(f"responses/{name}.canonical.json")


@pytest.mark.parametrize("name", ["request", "request_image", "request_stream"])
def test_documented_requests_pass_through_to_openai(name: str, openai: OpenAIProvider) -> None:
    raw = (FIXTURES / f"responses/{name}.responses.json").read_bytes()
    decoded = RESPONSES.decode(raw, {"openai-beta": "responses=v1"})
    assert decoded.raw is raw and decoded.wire == "responses"
    ctx = responses_context(json.loads(raw), translated=False)
    ctx.headers["openai-beta"] = "responses=v1"
    url, headers, body = openai.chat_request(ctx, "gpt-5.4", ctx.stream)
    assert url == "https://api.openai.com/v1/responses"
    assert body == ctx.raw  # the client's bytes
    assert headers["authorization"] == "Bearer sk-openai-key"
    assert headers["openai-beta"] == "responses=v1"


# -- answers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_doc", "name", "usage"),
    [
        (TEXT_REQUEST, "response", Usage(prompt_tokens=36, completion_tokens=87)),
        (load("responses/request.responses.json"), "response_function", Usage(291, 23)),
    ],
    ids=["text", "function_call"],
)
def test_canonical_answer_renders_as_the_documented_object(
    request_doc: Any, name: str, usage: Usage, openai: OpenAIProvider
) -> None:
    ctx = responses_context(request_doc)
    ctx.usage = usage
    canonical = (FIXTURES / f"responses/{name}.canonical.json").read_bytes()
    ours = json.loads(RESPONSES.render(ctx, canonical))
    documented = load(f"responses/{name}.responses.json")
    for tool in documented["tools"]:
        tool.pop("strict")  # OpenAI's echo adds its default; the gateway echoes the request
    assert_documented(documented, ours, Ids())
    assert ours["id"].startswith("resp_gw")
    # ... and back: on the native path the documented object is the answer, untouched,
    # and its usage is read.
    native = responses_context(request_doc, translated=False)
    body = (FIXTURES / f"responses/{name}.responses.json").read_bytes()
    assert openai.chat_response(native, "gpt-5.4", body) is body
    assert native.usage == usage


@pytest.mark.parametrize(
    ("request_name", "name"),
    [("request_stream", "stream"), ("request", "stream_function")],
    ids=["text", "function_call"],
)
async def test_canonical_stream_renders_as_the_documented_events(
    request_name: str, name: str
) -> None:
    documented = events_of((FIXTURES / f"responses/{name}.sse").read_bytes())
    ctx = responses_context(load(f"responses/{request_name}.responses.json"))
    final = documented[-1][1]["response"]["usage"]
    details = final.get("input_tokens_details", {})
    ctx.usage = Usage(
        prompt_tokens=final["input_tokens"],
        completion_tokens=final["output_tokens"],
        cached_tokens=details.get("cached_tokens", 0),
        reasoning_tokens=final["output_tokens_details"]["reasoning_tokens"],
    )
    canonical = (FIXTURES / f"responses/{name}.canonical.sse").read_bytes()
    ours = events_of(await collect(RESPONSES.render_stream(ctx, feed(canonical))))
    assert [n for n, _ in ours] == [n for n, _ in documented]
    assert [doc["sequence_number"] for _, doc in ours] == list(range(len(documented)))
    ids = Ids()
    for (_, doc), (_, mine) in zip(documented, ours, strict=True):
        doc = dict(doc)
        if name == "stream":  # the documented text stream predates `sequence_number`s
            assert doc.pop("sequence_number") is not None
        for tool in doc.get("response", {}).get("tools", []):
            tool.pop("strict", None)
        assert_documented(doc, mine, ids)


@pytest.mark.parametrize(
    ("name", "usage"),
    [
        ("stream", Usage(prompt_tokens=37, completion_tokens=11)),
        ("stream_function", Usage(291, 23, cached_tokens=128, reasoning_tokens=7)),
    ],
    ids=["text", "function_call"],
)
async def test_documented_stream_passes_through_the_native_path(
    name: str, usage: Usage, openai: OpenAIProvider
) -> None:
    sse = (FIXTURES / f"responses/{name}.sse").read_bytes()
    ctx = responses_context({"model": "gpt-5.4", "input": "x", "stream": True}, translated=False)
    out = await collect(openai.chat_events(ctx, "gpt-5.4", feed(sse)))
    assert out == sse  # every event, byte for byte, however the network split them
    assert ctx.usage == usage
