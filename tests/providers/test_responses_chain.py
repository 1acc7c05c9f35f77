"""`previous_response_id` against Claude: the gateway keeps the conversation itself.

Three turns chained through the `openai` SDK (the middle one streamed) reach an
Anthropic-format fake that records what it receives: each turn carries every turn before
it. Stored responses are fetched and deleted; another tenant's id, a deleted one, and one
answered with `store: false` are a 404 in OpenAI's shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.providers.upstreams import ANTHROPIC, TEXT
from tests.support import FakeUpstream, Recorded, Reply, run_gateway

TENANT_PLUGIN = """
from interlock.core import GatewayError, Identity, Plugin, hookimpl

class Tenants(Plugin):
    name = "tenants"

    @hookimpl
    def pre_auth(self, ctx):
        key = ctx.headers.get("authorization", "").removeprefix("Bearer ")
        if not key.startswith("key-"):
            raise GatewayError(401, "authentication_error", "unknown key")
        ctx.identity = Identity(tenant=key.removeprefix("key-"))
"""


def _answer(rec: Recorded) -> Reply:
    return ANTHROPIC.answer(rec, bool(rec.json().get("stream")), False)


def _config(url: str, tmp_path: Path) -> str:
    plugin = tmp_path / "tenants.py"
    plugin.write_text(TENANT_PLUGIN)
    return ANTHROPIC.config(url, recorder=False) + f'\n[plugins.tenants]\npath = "{plugin}"\n'


def client(gw: str, tenant: str = "acme") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw + "/v1", api_key=f"key-{tenant}", max_retries=0)


def conversation(sent: Recorded) -> list[tuple[str, str]]:
    """The Anthropic request's turns as (role, text)."""
    out: list[tuple[str, str]] = []
    for message in sent.json()["messages"]:
        content: Any = message["content"]
        text = content if isinstance(content, str) else "".join(b["text"] for b in content)
        out.append((message["role"], text))
    return out


async def test_three_turns_chained_against_claude(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/messages", _answer)
    async with run_gateway(_config(url, tmp_path), tmp_path) as gw:
        api = client(gw)
        first = await api.responses.create(
            model="claude-sonnet-4-6", input="My name is Ada.", instructions="Be brief."
        )
        async with api.responses.stream(
            model="claude-sonnet-4-6", input="What is my name?", previous_response_id=first.id
        ) as stream:
            second = await stream.get_final_response()
        third = await api.responses.create(
            model="claude-sonnet-4-6",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "Spell it."}]}],
            previous_response_id=second.id,
        )
        fetched = await api.responses.retrieve(second.id)
    assert first.id.startswith("resp_gw") and len({first.id, second.id, third.id}) == 3
    assert (second.previous_response_id, third.previous_response_id) == (first.id, second.id)
    one, two, three = fake.requests
    assert conversation(one) == [("user", "My name is Ada.")]
    assert conversation(two) == [
        ("user", "My name is Ada."),
        ("assistant", TEXT),
        ("user", "What is my name?"),
    ]
    assert conversation(three) == [*conversation(two), ("assistant", TEXT), ("user", "Spell it.")]
    # Instructions are not carried over to later turns (OpenAI's rule).
    assert one.json()["system"][0]["text"] == "Be brief."
    assert "system" not in two.json() and "system" not in three.json()
    assert (fetched.id, fetched.output_text) == (second.id, TEXT)
    assert fetched.usage == second.usage and fetched.previous_response_id == first.id


async def test_only_the_tenant_that_made_a_response_sees_it(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/messages", _answer)
    async with run_gateway(_config(url, tmp_path), tmp_path) as gw:
        mine = await client(gw).responses.create(model="claude-sonnet-4-6", input="secret plan")
        other = client(gw, "globex")
        with pytest.raises(openai.NotFoundError) as chained:
            await other.responses.create(
                model="claude-sonnet-4-6", input="tell me", previous_response_id=mine.id
            )
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            await other.responses.delete(mine.id)
        await client(gw).responses.retrieve(mine.id)  # still there for its tenant
    error = chained.value.response.json()["error"]
    assert error["code"] == "previous_response_not_found"
    assert error["param"] == "previous_response_id"
    assert len(fake.requests) == 1  # nothing reached Claude for the other tenant


async def test_deleted_and_unstored_responses_cannot_be_continued(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/messages", _answer)
    async with run_gateway(_config(url, tmp_path), tmp_path) as gw:
        api = client(gw)
        kept = await api.responses.create(model="claude-sonnet-4-6", input="one")
        await api.responses.delete(kept.id)
        unstored = await api.responses.create(model="claude-sonnet-4-6", input="two", store=False)
        for gone in (kept.id, unstored.id, "resp_gw" + "0" * 32):
            with pytest.raises(openai.NotFoundError):
                await api.responses.create(
                    model="claude-sonnet-4-6", input="more", previous_response_id=gone
                )
            with pytest.raises(openai.NotFoundError):
                await api.responses.retrieve(gone)
        async with httpx.AsyncClient() as raw:
            anonymous = await raw.get(f"{gw}/v1/responses/{kept.id}")
    assert unstored.store is False
    assert anonymous.status_code == 401  # pre_auth runs for these routes too
    assert len(fake.requests) == 2


async def test_a_conversation_kept_here_continues_on_openai_whole(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    """A turn answered by Claude, continued on an `openai` provider: OpenAI does not
    know the gateway's id, so the kept turns are put in front of the input instead."""
    from tests.providers.responses_upstreams import OPENAI, native_response

    fake, url = upstream
    fake.on("/v1/messages", _answer)
    fake.on("/v1/responses", lambda rec: Reply.json(native_response("gpt-4o", False)))
    async with run_gateway(_config(url, tmp_path) + OPENAI.table(url), tmp_path) as gw:
        api = client(gw)
        first = await api.responses.create(model="claude-sonnet-4-6", input="My name is Ada.")
        await api.responses.create(model="gpt-4o", input="And mine?", previous_response_id=first.id)
    sent = fake.requests[-1].json()
    assert sent["previous_response_id"] is None
    said = [(item.get("role"), item.get("type")) for item in sent["input"]]
    assert said == [("user", "message"), ("assistant", "message"), ("user", "message")]
    assert sent["input"][1]["content"][0]["text"] == TEXT
    assert sent["input"][2]["content"][0]["text"] == "And mine?"
