"""One token estimate everywhere the gateway has no tokenizer count: about four characters
a token (`estimate_tokens`), as the README says. `/v1/messages/count_tokens` answers the
same number the gateway would settle a cut-off stream of that request on."""

from __future__ import annotations

from pathlib import Path

import anthropic
import msgspec
import pytest

from interlock.core.context import RequestContext
from interlock.core.inbound_anthropic import AnthropicMessages
from interlock.core.providers.base import estimate_prompt_tokens, estimate_tokens
from tests.support import run_gateway

ROOT = Path(__file__).resolve().parents[2]
MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("x" * 400, 100),
        ("é" * 8, 2),  # characters, not bytes
        (("é" * 8).encode(), 2),
        (b"abcdefgh", 2),
        ("☀️" * 4, 2),  # two code points each
    ],
)
def test_four_characters_a_token(text: str | bytes, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def context_of(raw: bytes) -> RequestContext:
    decoded = AnthropicMessages().decode(raw, {})
    ctx = RequestContext(
        request_id="r",
        inbound="anthropic",
        endpoint="chat",
        path="/v1/messages",
        headers={},
        client=None,
    )
    ctx.set_body(decoded.raw, decoded.head)
    return ctx


@pytest.mark.parametrize(
    "request_body",
    [
        {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]},
        {
            "model": "claude-sonnet-4-6",
            "system": "Réponds en français. " * 50,
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "Grüezi ☀️ " * 100}],
        },
    ],
)
def test_count_tokens_is_the_estimate_for_the_same_request(request_body: dict) -> None:
    raw = msgspec.json.encode({**request_body, "max_tokens": 1})
    counted = msgspec.json.decode(AnthropicMessages().count_tokens(raw))
    ctx = context_of(raw)  # the same request sent to /v1/messages
    assert counted == {"input_tokens": estimate_prompt_tokens(ctx)}
    assert counted["input_tokens"] == -(-len(raw.decode()) // 4)  # characters, not bytes


async def test_count_tokens_endpoint(tmp_path: Path) -> None:
    text = "Grüezi ☀️ " * 100
    async with run_gateway(MOCK, tmp_path) as gw:
        sdk = anthropic.AsyncAnthropic(base_url=gw, api_key="x", max_retries=0)
        counted = await sdk.messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": text}]
        )
    # the text is ~1000 characters (~250 tokens), its UTF-8 ~1,400 bytes: characters count
    assert 250 < counted.input_tokens < 280


def test_the_readme_states_the_same_rule() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "about four characters a token" in readme
