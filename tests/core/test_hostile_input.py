"""Hostile request bodies: a 400 in the caller's own shape that names the problem, never
a 5xx, never a traceback, never forwarded to the provider (core/validate.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.core.errors import GatewayError
from interlock.core.providers.anthropic_translate import anthropic_request
from interlock.core.providers.gemini_translate import gemini_request
from interlock.core.validate import MAX_DEPTH, check_depth, check_utf8
from tests.core.test_proxy_openai import COMPLETION
from tests.support import GUARD, FakeUpstream, Reply, run_gateway, threaded_gateway

HI = [{"role": "user", "content": "hi"}]


def gateway(url: str) -> str:
    """`gpt-4o` on an OpenAI-format fake (it must receive nothing), anything else on the
    mock (which decodes the whole body, so what the core lets through must decode)."""
    return f"""
[[providers]]
name = "up"
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-test-upstream-key-0000"
models = ["gpt-4o"]

[[providers]]
name = "mock"
kind = "mock"
models = ["*"]
"""


def openai_body(**fields: object) -> bytes:
    return msgspec.json.encode({"model": "gpt-4o", "messages": HI, **fields})


def anthropic_body(**fields: object) -> bytes:
    return msgspec.json.encode({"model": "gpt-4o", "max_tokens": 10, "messages": HI, **fields})


def nested(depth: int) -> bytes:
    """A valid chat request whose unknown field nests `depth` arrays in the top object."""
    return b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"x":' + (
        b"[" * depth + b"]" * depth + b"}"
    )


# (body, what the message must mention); each sent as an OpenAI and an Anthropic request.
HOSTILE = [
    pytest.param(
        b'{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"a\xff\xfeb"}]}',
        "UTF-8",
        id="invalid-utf8-in-a-skipped-string",
    ),
    pytest.param(
        b'{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"\xed\xa0\x80"}]}',
        "UTF-8",
        id="utf8-encoded-surrogate",
    ),
    pytest.param(
        b'{"model":"gpt-4o","max_tokens":10,"x":"\xc3"}', "UTF-8", id="truncated-utf8-sequence"
    ),
    pytest.param(b"[" * 100_000, "deeper than 64", id="100k-open-brackets"),
    pytest.param(nested(MAX_DEPTH), "deeper than 64", id="65-levels"),
    pytest.param(
        b'{"model":"gpt-4o","max_tokens":' + b"9" * 5000 + b',"messages":[]}',
        "max_tokens",
        id="5000-digit-max-tokens",
    ),
    pytest.param(
        b'{"model":"gpt\\u0000-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}',
        "model",
        id="nul-in-model",
    ),
    pytest.param(anthropic_body(model=""), "`model` must not be empty", id="empty-model"),
    pytest.param(anthropic_body(model="   "), "`model` must not be empty", id="blank-model"),
    pytest.param(anthropic_body(model="x" * 300), "model", id="model-too-long"),
    pytest.param(b"[]", "must be a JSON object", id="array-at-top"),
    pytest.param(b'"hello"', "must be a JSON object", id="string-at-top"),
    pytest.param(b"null", "must be a JSON object", id="null-at-top"),
    pytest.param(b"42", "must be a JSON object", id="number-at-top"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeUpstream, str]]:
    """One gateway for the module's many small cases; `fake` must receive none of them."""
    tmp = tmp_path_factory.mktemp("hostile")
    with threaded_gateway(gateway, tmp) as (fake, gw):
        fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
        yield fake, gw


def send(gw: str, path: str, body: bytes) -> httpx.Response:
    with httpx.Client(timeout=GUARD) as client:
        return client.post(
            f"{gw}{path}", content=body, headers={"content-type": "application/json"}
        )


async def post(client: httpx.AsyncClient, gw: str, path: str, body: bytes) -> httpx.Response:
    return await client.post(
        f"{gw}{path}", content=body, headers={"content-type": "application/json"}
    )


def assert_refused(resp: httpx.Response, inbound: str, mention: str) -> str:
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    if inbound == "openai":
        assert body["error"]["type"] == "invalid_request_error"
        message: str = body["error"]["message"]
    else:
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]
    assert mention in message, message
    return message


@pytest.mark.parametrize(("body", "mention"), HOSTILE)
def test_hostile_bodies_are_400_in_both_shapes_and_never_forwarded(
    served: tuple[FakeUpstream, str], body: bytes, mention: str
) -> None:
    fake, gw = served
    assert_refused(send(gw, "/v1/chat/completions", body), "openai", mention)
    assert_refused(send(gw, "/v1/messages", body), "anthropic", mention)
    with httpx.Client() as client:
        assert client.get(f"{gw}/healthz").status_code == 200
    assert fake.requests == []


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2**31}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_completion_tokens": 2**40}, "max_completion_tokens"),
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.01}, "top_p"),
    ],
)
def test_numbers_out_of_range_name_the_field_openai(
    served: tuple[FakeUpstream, str], fields: dict[str, object], param: str
) -> None:
    fake, gw = served
    resp = send(gw, "/v1/chat/completions", openai_body(**fields))
    message = assert_refused(resp, "openai", f"`{param}`")
    assert resp.json()["error"]["param"] == param, message
    assert fake.requests == []


def test_temperature_overflowing_to_infinity_is_refused(served: tuple[FakeUpstream, str]) -> None:
    fake, gw = served
    body = b'{"model":"gpt-4o","temperature":1e999,"messages":[{"role":"user","content":"x"}]}'
    assert_refused(send(gw, "/v1/chat/completions", body), "openai", "temperature")
    assert fake.requests == []


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2**31}, "max_tokens"),
        ({"temperature": 1.5}, "temperature"),  # Anthropic's range is 0..1
        ({"top_p": -1}, "top_p"),
    ],
)
def test_numbers_out_of_range_name_the_field_anthropic(
    served: tuple[FakeUpstream, str], fields: dict[str, object], param: str
) -> None:
    fake, gw = served
    assert_refused(send(gw, "/v1/messages", anthropic_body(**fields)), "anthropic", f"`{param}`")
    assert fake.requests == []


async def test_sane_values_and_depth_at_the_limit_pass(upstream, client, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    fields = {"max_tokens": 2**31 - 1, "n": 128, "temperature": 2, "top_p": 0, "max_tokens_x": 1}
    async with run_gateway(gateway(url), tmp_path) as gw:
        ok = await post(client, gw, "/v1/chat/completions", openai_body(**fields))
        deep = await post(client, gw, "/v1/chat/completions", nested(MAX_DEPTH - 1))
        nulls = await post(
            client, gw, "/v1/chat/completions", openai_body(max_tokens=None, temperature=None)
        )
    assert ok.status_code == deep.status_code == nulls.status_code == 200
    assert len(fake.requests) == 3
    assert fake.requests[1].body == nested(MAX_DEPTH - 1)  # forwarded byte for byte


def test_embeddings_are_checked_too(served: tuple[FakeUpstream, str]) -> None:
    fake, gw = served
    assert_refused(send(gw, "/v1/embeddings", b'{"model":"e","input":"\xff"}'), "openai", "UTF-8")
    empty = send(gw, "/v1/embeddings", b'{"model":"","input":"x"}')
    assert_refused(empty, "openai", "`model` must not be empty")
    dims = send(gw, "/v1/embeddings", b'{"model":"e","input":"x","dimensions":0}')
    assert_refused(dims, "openai", "`dimensions`")
    assert fake.requests == []


@pytest.mark.parametrize(
    "body",
    [
        # What the byte checks let through but Python objects cannot hold: the mock (and
        # every translating adapter) decodes the whole body, and answers 400, not 500.
        rb'{"model":"m","messages":[{"role":"user","content":"\ud800"}]}',
        rb'{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1e999}',
        rb'{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":' + b"9" * 5000 + b"}",
    ],
    ids=["lone-surrogate-escape", "float-overflow", "huge-integer"],
)
def test_undecodable_skipped_parts_are_400_on_translating_paths(
    served: tuple[FakeUpstream, str], body: bytes
) -> None:
    _, gw = served
    assert_refused(send(gw, "/v1/chat/completions", body), "openai", "")
    streamed = body.replace(b"{", b'{"stream":true,', 1)
    assert_refused(send(gw, "/v1/chat/completions", streamed), "openai", "")
    messages = send(gw, "/v1/messages", body.replace(b'"messages"', b'"max_tokens":5,"messages"'))
    # The Anthropic inbound translates only the fields it knows: an unknown `seed` is
    # dropped (200), a bad known one refused in Anthropic's shape.
    assert messages.status_code in (200, 400)
    if messages.status_code == 400:
        assert messages.json()["type"] == "error"


def _assistant(tool_calls: object) -> dict[str, object]:
    return {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": tool_calls},
        ]
    }


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        # found by the fuzz test: each was an AttributeError or TypeError (a 500) before
        (
            _assistant([[{"x": 1}], {"id": "c", "function": {"name": "f", "arguments": "{}"}}]),
            "messages[1].tool_calls[0]",
        ),
        (_assistant(5), "messages[1].tool_calls"),
        (_assistant("call"), "messages[1].tool_calls"),
        (_assistant([{"id": "c", "function": "f"}]), "messages[1].tool_calls[0]"),
        (_assistant([{"id": ["c"], "function": {"name": "f"}}]), "messages[1].tool_calls[0]"),
        (
            _assistant([{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}]),
            "messages[1].tool_calls[0]",
        ),
        (
            {"messages": [{"role": "tool", "tool_call_id": ["x"], "content": "r"}]},
            "messages[0].tool_call_id",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "stop": 5}, "stop"),
        ({"messages": [{"role": "user", "content": "hi"}], "stop": ["a", 1]}, "stop"),
    ],
)
@pytest.mark.parametrize("translate", ["anthropic", "gemini"])
def test_translators_refuse_malformed_values_naming_them(
    translate: str, payload: dict[str, object], param: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        if translate == "anthropic":
            anthropic_request(payload, "claude", False, 100)
        else:
            gemini_request(payload)
    assert caught.value.status == 400
    assert caught.value.param == param


@pytest.mark.parametrize("text", [None, 5, ["x"]], ids=["null", "number", "list"])
def test_a_text_part_that_is_not_text_is_never_a_500(
    served: tuple[FakeUpstream, str], text: object
) -> None:
    """Found by the fuzz test: the mock joined `{"type": "text", "text": null}` (a
    TypeError, so a 500); the translators' tool-result joins did the same."""
    _, gw = served
    parts = [{"type": "text", "text": text}, {"type": "text", "text": "hi"}]
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    resp = send(gw, "/v1/chat/completions", msgspec.json.encode(body))
    assert resp.status_code == 200, resp.text
    tool = {"role": "tool", "tool_call_id": "c", "content": parts}
    assert anthropic_request({"messages": [tool]}, "claude", False, 10)["messages"][0][
        "content"
    ] == [{"type": "tool_result", "tool_use_id": "c", "content": "hi"}]


# -- the byte checks on their own --------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "refused"),
    [
        (b"[" * 64 + b"]" * 64, False),
        (b"[" * 65 + b"]" * 65, True),
        (b"{" + b'"a":{' * 64 + b"}" * 65, True),
        (b"{" + b'"a":{' * 63 + b"}" * 64, False),
        # brackets inside strings never count, however many and however unbalanced
        (b'{"a":"' + b"[" * 500 + b'"}', False),
        (b'{"a":"' + b"{[" * 300 + b"]}" * 300 + b'"}', False),
        # an escaped quote does not end a string; an escaped backslash before one does
        (b'{"a":"\\"' + b"[" * 100 + b'"}', False),
        (b'{"a":"\\\\"' + b",[" * 100 + b'"}', True),
        # strings full of closers cannot hide the nesting around them
        (b"[" + b'["]",' * 100 + b"1" + b"]" * 101, True),
        (b"[" + b'["\\"]]]",' * 100 + b"1" + b"]" * 101, True),
        # unbalanced but shallow: left for the JSON decoder to report
        (b"]]]]" + b"[" * 10, False),
        (b"[" * 65, True),
        (b"{" * 30 + b"[" * 40, True),
    ],
)
def test_check_depth(raw: bytes, refused: bool) -> None:
    if refused:
        with pytest.raises(GatewayError, match="deeper than 64"):
            check_depth(raw)
    else:
        check_depth(raw)


def test_check_utf8_names_the_offset() -> None:
    check_utf8("Grüezi ☀️".encode())
    with pytest.raises(GatewayError, match="at byte 3"):
        check_utf8(b'{"a\xc0\xaf"}')  # an overlong encoding of "/"


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


tricky_text = st.text(st.sampled_from(list('ab[]{}"\\\n/é')), max_size=12)
json_documents = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(tricky_text, kids, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, derandomize=True, database=None)
@given(doc=json_documents, limit=st.integers(1, 6), ascii_only=st.booleans(), pad=st.booleans())
def test_check_depth_agrees_with_the_real_depth(
    doc: object, limit: int, ascii_only: bool, pad: bool
) -> None:
    """Whatever the strings hold (brackets, quotes, backslashes, escapes before quotes),
    the byte scan refuses exactly the documents nested deeper than the limit; `pad` makes
    the body large enough to skip the small-body shortcut."""
    raw = json.dumps(doc, ensure_ascii=ascii_only).encode()
    if pad:
        raw = b'{"pad":"' + b"[" * 5000 + b'","doc":' + raw + b"}"
        depth = _depth(doc) + 1
    else:
        depth = _depth(doc)
    if depth > limit:
        with pytest.raises(GatewayError):
            check_depth(raw, limit)
    else:
        check_depth(raw, limit)
