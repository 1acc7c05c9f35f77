"""Hypothesis throws hostile bodies and headers at the real gateway, through both inbound
formats, the embeddings and count_tokens endpoints, and every adapter behind them (the
mock, an OpenAI-format, an Anthropic and a Gemini fake on loopback). Whatever arrives:
a status below 500, an error body that is JSON in the caller's shape, the server still
serving, and no traceback or error line in anything it logged.

The bodies are mostly almost-valid requests (so they get past the first check and into
the adapters), with raw tokens no JSON encoder would write spliced into any value: lone
surrogate escapes, invalid UTF-8, NUL, numbers out of every range, deep nesting. The run
is derandomized (the same examples every time) and bounded to a few seconds.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.providers.upstreams import _anthropic_answer, _gemini_answer, _openai_answer
from tests.support import FakeUpstream, Recorded, Reply, run_gateway, serve_asgi

EXAMPLES = 400

MODELS = ["gpt-4o", "claude-x", "gem", "mock-1", "mock-2"]  # the mock decodes everything
PATHS = ["/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/messages/count_tokens"]
ANTHROPIC_SHAPED = {"/v1/messages", "/v1/messages/count_tokens"}


def gateway_config(url: str) -> str:
    return f"""
[[providers]]
name = "up"
kind = "openai-compatible"
base_url = "{url}/v1"
models = ["gpt-4o"]

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{url}"
api_key = "sk-ant-fuzz-key-000000000000"
models = ["claude-x"]

[[providers]]
name = "gemini"
kind = "gemini"
base_url = "{url}/v1beta"
api_key = "AIzaFuzzKey0000000000000"
models = ["gem"]

[[providers]]
name = "mock"
kind = "mock"
models = ["*"]
"""


# -- fake providers that never fail themselves -----------------------------------------------
def _robust(answer: Any, stream_of: Any) -> Any:
    """A provider answers a body it cannot read with a 400, as a real one does."""

    def handler(rec: Recorded) -> Reply:
        try:
            return answer(rec, stream_of(rec), b"tools" in rec.body)  # type: ignore[no-any-return]
        except Exception:
            return Reply.json({"error": {"message": "bad request", "type": "invalid"}}, 400)

    return handler


def _install(fake: FakeUpstream) -> None:
    def stream_flag(rec: Recorded) -> bool:
        return bool(rec.json().get("stream"))

    fake.on("/v1/chat/completions", _robust(_openai_answer, stream_flag))
    fake.on("/v1/messages", _robust(_anthropic_answer, stream_flag))
    fake.on(
        "/v1/embeddings",
        lambda r: Reply.json(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
                "model": "gpt-4o",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ),
    )
    for method in ("generateContent", "streamGenerateContent", "batchEmbedContents"):
        fake.on(
            f"/v1beta/models/gem:{method}",
            _robust(_gemini_answer, lambda r: r.path.endswith(":streamGenerateContent")),
        )


# -- what a hostile client sends -------------------------------------------------------------
# Raw JSON tokens spliced in where a value goes: no JSON encoder writes these.
RAW_TOKENS = [
    b"1e999",
    b"-1e999",
    b"9" * 5000,
    b'"\\ud800"',
    b'"\\u0000"',
    b'"a\xffb"',
    b'"\xed\xa0\x80"',
    b"[" * 70 + b"]" * 70,
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 70 + b"1" + b"}" * 70,
    b"NaN",
    b"01",
]
_PLACE = re.compile('"\ue000(\\d+)\ue000"'.encode())  # a placeholder string, quotes and all

raw_token = st.integers(0, len(RAW_TOKENS) - 1).map(lambda i: f"\ue000{i}\ue000")
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    raw_token,
)
json_value = st.recursive(
    leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
schema = st.recursive(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])},
        optional={
            "enum": st.lists(leaf, min_size=1, max_size=3),
            "minimum": st.integers(-5, 5),
            "maximum": st.integers(-5, 5),
            "minLength": st.integers(0, 5),
            "format": st.sampled_from(["date-time", "email", "uri", "nonsense"]),
        },
    ),
    lambda kids: (
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(st.text(max_size=5), kids)},
            optional={"required": st.lists(st.text(max_size=5), max_size=2)},
        )
        | st.fixed_dictionaries({"type": st.just("array"), "items": kids})
        | st.fixed_dictionaries({"anyOf": st.lists(kids, min_size=1, max_size=2)})
    ),
    max_leaves=6,
)
text = st.text(max_size=30)
name = st.sampled_from(["t0", "t1", "get_weather"])

# -- well-formed requests of each endpoint, to be poisoned below ------------------------------
openai_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries(
                {"url": st.sampled_from(["data:image/png;base64,AAAA", "https://x/a.png"])}
            ),
        }
    ),
)
openai_call = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["call_1", "call_2"]),
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": name, "arguments": st.just('{"a": 1}')}),
    }
)
openai_message = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "developer"]),
            "content": text | st.lists(openai_part, min_size=1, max_size=2),
        }
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": text | st.none()},
        optional={"tool_calls": st.lists(openai_call, min_size=1, max_size=2)},
    ),
    st.fixed_dictionaries(
        {
            "role": st.just("tool"),
            "tool_call_id": st.sampled_from(["call_1", "call_2"]),
            "content": text,
        }
    ),
)
openai_tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": name}, optional={"parameters": schema}),
    }
)
openai_chat = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "messages": st.lists(openai_message, min_size=1, max_size=3),
    },
    optional={
        "max_tokens": st.integers(1, 100),
        "max_completion_tokens": st.integers(1, 100),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "n": st.just(1),
        "stream": st.booleans(),
        "stream_options": st.none() | st.fixed_dictionaries({"include_usage": st.booleans()}),
        "tools": st.lists(openai_tool, min_size=1, max_size=2),
        "tool_choice": st.sampled_from(
            ["auto", "none", "required", {"type": "function", "function": {"name": "t0"}}]
        ),
        "stop": text | st.lists(text, max_size=2),
        "response_format": st.sampled_from([{"type": "json_object"}, {"type": "text"}]),
        "user": text,
        "metadata": st.dictionaries(st.text(max_size=5), text, max_size=2),
    },
)
anthropic_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": text, "cache_control": st.just({"type": "ephemeral"})}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("image"),
            "source": st.just({"type": "base64", "media_type": "image/png", "data": "AAAA"}),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": st.just("toolu_1"), "name": name, "input": st.just({})}
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": st.just("toolu_1"), "content": text}
    ),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": text}),
)
anthropic_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant"]),
        "content": text | st.lists(anthropic_block, min_size=1, max_size=3),
    }
)
anthropic_messages = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "max_tokens": st.integers(1, 100),
        "messages": st.lists(anthropic_message, min_size=1, max_size=3),
    },
    optional={
        "system": text | st.lists(anthropic_block, max_size=2),
        "stream": st.booleans(),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(1, 5),
        "stop_sequences": st.lists(text, max_size=2),
        "tools": st.lists(
            st.fixed_dictionaries({"name": name, "input_schema": schema}), min_size=1, max_size=2
        ),
        "tool_choice": st.sampled_from(
            [{"type": "auto"}, {"type": "any"}, {"type": "none"}, {"type": "tool", "name": "t0"}]
        ),
        "metadata": st.fixed_dictionaries({"user_id": text}),
        "thinking": st.just({"type": "enabled", "budget_tokens": 1024}),
    },
)
embeddings = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS), "input": text | st.lists(text, min_size=1, max_size=3)},
    optional={
        "dimensions": st.integers(1, 64),
        "encoding_format": st.sampled_from(["float", "base64"]),
    },
)
WELL_FORMED = {
    "/v1/chat/completions": openai_chat,
    "/v1/messages": anthropic_messages,
    "/v1/messages/count_tokens": anthropic_messages,
    "/v1/embeddings": embeddings,
}


@st.composite
def poisoned(draw: st.DrawFn, well_formed: st.SearchStrategy[Any], times: int | None) -> Any:
    """A well-formed request with `times` values (anywhere in it; 0-3 when None) replaced
    by, or keys added with, a raw token or any JSON value at all."""
    doc = copy.deepcopy(draw(well_formed))  # `st.just` values are shared between draws
    for _ in range(draw(st.integers(0, 3)) if times is None else times):
        containers: list[Any] = []
        todo = [doc]
        while todo:
            node = todo.pop()
            containers.append(node)
            todo.extend(
                v
                for v in (node.values() if isinstance(node, dict) else node)
                if isinstance(v, dict | list)
            )
        target = draw(st.sampled_from(containers))
        value = draw(raw_token | json_value)
        if isinstance(target, dict):
            target[draw(st.sampled_from([*target, "extra"]))] = value
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = value
        else:
            target.append(value)
    return doc


def encode(doc: Any) -> bytes:
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return _PLACE.sub(lambda m: RAW_TOKENS[int(m.group(1))], raw)


def mangle(raw: bytes, where: int, junk: bytes, how: str) -> bytes:
    at = where % (len(raw) + 1)
    if how == "insert":
        return raw[:at] + junk + raw[at:]
    if how == "truncate":
        return raw[:at]
    return raw[:at] + junk + raw[at + len(junk) :]  # overwrite


@st.composite
def request(draw: st.DrawFn) -> tuple[str, bytes]:
    """`(path, body)`: mostly the path's own request with one bad value, or a few;
    sometimes another endpoint's; sometimes its bytes mangled; sometimes bytes at all."""
    path = draw(st.sampled_from(PATHS + PATHS[:2]))  # chat and messages twice as often
    kind = draw(st.sampled_from(["one", "one", "one", "few", "few", "other", "mangled", "bytes"]))
    if kind == "bytes":
        return path, draw(st.binary(max_size=200))
    source = WELL_FORMED[path]
    if kind == "other":
        source = draw(st.sampled_from(list(WELL_FORMED.values())))
    raw = encode(draw(poisoned(source, 1 if kind == "one" else None)))
    if kind == "mangled":
        junk = draw(st.binary(min_size=1, max_size=3) | st.sampled_from(RAW_TOKENS))
        how = draw(st.sampled_from(["insert", "truncate", "overwrite"]))
        raw = mangle(raw, draw(st.integers(0, 10_000)), junk, how)
    return path, raw


# What an HTTP/1.1 client can send at all (h11 refuses control bytes and edge spaces).
header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
headers = st.dictionaries(
    st.sampled_from(
        [
            "content-type",
            "x-request-id",
            "x-interlock-tags",
            "x-feature",
            "anthropic-version",
            "anthropic-beta",
            "authorization",
            "x-api-key",
            "accept",
            "accept-encoding",
            "content-encoding",
            "openai-beta",
            "x-forwarded-for",
        ]
    ),
    st.sampled_from(["application/json", "text/plain", "", "gzip", "1.2.3.4", "a=b,c"])
    | header_value,
    max_size=4,
)


def check(resp: httpx.Response, path: str) -> None:
    assert resp.status_code < 500, resp.text
    kind = resp.headers.get("content-type", "")
    if resp.status_code >= 400:
        assert kind == "application/json", kind
        doc = resp.json()
        if path in ANTHROPIC_SHAPED:
            assert doc["type"] == "error" and isinstance(doc["error"]["message"], str)
        else:
            assert isinstance(doc["error"]["message"], str) and doc["error"]["type"]
    elif kind.startswith("text/event-stream"):
        assert resp.content.endswith(b"\n\n")
    else:
        assert isinstance(resp.json(), dict)


def fuzz(gw: str) -> None:
    with httpx.Client(base_url=gw, timeout=10.0) as client:

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(sent=request(), extra=headers)
        def one(sent: tuple[str, bytes], extra: dict[str, str]) -> None:
            path, raw = sent
            resp = client.post(path, content=raw, headers=extra)
            check(resp, path)
            assert client.get("/healthz").status_code == 200

        one()


async def test_fuzz_hostile_bodies_and_headers(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fake = FakeUpstream()
    _install(fake)
    async with serve_asgi(fake) as url, run_gateway(gateway_config(url), tmp_path) as gw:
        await asyncio.to_thread(fuzz, gw)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{gw}/healthz")).status_code == 200
    out, err = capfd.readouterr()
    logged = out + err
    assert logged.count('"event":"request"') >= EXAMPLES // 2  # the log was captured
    assert "Traceback" not in logged
    assert '"level":"error"' not in logged
