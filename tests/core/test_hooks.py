"""The hook contract: plugins.toml order, async hooks awaited, disabled plugins absent,
route as firstresult, and every hook point doing what hookspecs.py says."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from interlock.core.app import create_app
from interlock.core.config import ConfigError
from tests.core.test_proxy_openai import COMPLETION, config
from tests.support import Reply, gateway_config, run_gateway, serve_asgi

HI = [{"role": "user", "content": "hi"}]
CALLS: list[str] = []  # what the plugins below record; cleared per test


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


def plugin_file(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(f'''
        import asyncio
        from interlock.core import hookimpl, Plugin, GatewayError, RoutingDecision, Candidate, ReadyResponse
        from tests.core.test_hooks import CALLS

        class P(Plugin):
            name = "{name}"
    ''')
        + textwrap.indent(textwrap.dedent(body), "    ")
    )
    return f'\n[plugins.{name}]\npath = "{path}"\n'


RECORDER = """
@hookimpl
def pre_auth(self, ctx):
    CALLS.append(f"{self.name}.pre_auth")

@hookimpl
async def pre_forward(self, ctx):
    await asyncio.sleep(0)
    CALLS.append(f"{self.name}.pre_forward")

@hookimpl
async def post_response(self, ctx):
    await asyncio.sleep(0)
    CALLS.append(f"{self.name}.post_response:{ctx.status}")
"""


async def _chat(gw: str, **extra: object) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{gw}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI, **extra}
        )


@pytest.mark.parametrize("order", [("alpha", "beta"), ("beta", "alpha")])
async def test_hooks_run_in_plugins_toml_order(
    upstream, tmp_path: Path, order: tuple[str, str]
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = config(url) + "".join(plugin_file(tmp_path, n, RECORDER) for n in order)
    async with run_gateway(toml, tmp_path) as gw:
        assert (await _chat(gw)).status_code == 200
    first, second = order
    assert [
        f"{first}.pre_auth",
        f"{second}.pre_auth",
        f"{first}.pre_forward",
        f"{second}.pre_forward",
        f"{first}.post_response:200",
        f"{second}.post_response:200",
    ] == CALLS


async def test_async_hooks_are_awaited_before_the_next(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    setter = """
    @hookimpl
    async def pre_auth(self, ctx):
        await asyncio.sleep(0)
        ctx.state["setter"] = "done"
    """
    reader = """
    @hookimpl
    def pre_auth(self, ctx):
        CALLS.append(ctx.state.get("setter", "missing"))
    """
    toml = (
        config(url)
        + plugin_file(tmp_path, "setter", setter)
        + plugin_file(tmp_path, "reader", reader)
    )
    async with run_gateway(toml, tmp_path) as gw:
        assert (await _chat(gw)).status_code == 200
    assert CALLS == ["done"]


async def test_a_disabled_plugin_is_never_imported_or_called(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('imported!')\n")
    toml = (
        config(url)
        + plugin_file(tmp_path, "on", RECORDER)
        + plugin_file(tmp_path, "off", RECORDER).replace(
            "\n[plugins.off]\n", "\n[plugins.off]\nenabled = false\n"
        )
        + f'\n[plugins.broken]\nenabled = false\npath = "{broken}"\n'
    )
    async with run_gateway(toml, tmp_path) as gw:
        assert (await _chat(gw)).status_code == 200
    assert CALLS and all(c.startswith("on.") for c in CALLS)


async def test_pre_auth_refusal_stops_the_request_in_the_callers_shape(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    refuse = """
    @hookimpl
    def pre_auth(self, ctx):
        raise GatewayError(401, "authentication_error", "no key")
    """
    toml = (
        config(url) + plugin_file(tmp_path, "auth", refuse) + plugin_file(tmp_path, "rec", RECORDER)
    )
    async with run_gateway(toml, tmp_path) as gw:
        resp = await _chat(gw)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    assert fake.requests == []
    assert CALLS == ["rec.post_response:401"]  # post_response runs on failures too


async def test_route_first_decision_wins_and_none_passes(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    passer = """
    @hookimpl
    def route(self, ctx):
        CALLS.append("passer")
        return None
    """
    chooser = """
    @hookimpl
    def route(self, ctx):
        CALLS.append("chooser")
        return RoutingDecision([Candidate("up", "gpt-4o-mini")], "test")
    """
    late = """
    @hookimpl
    def route(self, ctx):
        CALLS.append("late")
        return RoutingDecision([Candidate("up", "gpt-4o")], "late")
    """
    toml = (
        config(url)
        + plugin_file(tmp_path, "passer", passer)
        + plugin_file(tmp_path, "chooser", chooser)
        + plugin_file(tmp_path, "late", late)
    )
    async with run_gateway(toml, tmp_path) as gw:
        assert (await _chat(gw)).status_code == 200
    assert CALLS == ["passer", "chooser"]
    assert fake.requests[0].json()["model"] == "gpt-4o-mini"


async def test_failover_moves_to_the_next_candidate_on_a_retryable_failure(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on(
        "/v1/chat/completions",
        lambda r: (
            Reply.json({"error": {"message": "down"}}, 503)
            if r.json()["model"] == "gpt-4o"
            else Reply.json(COMPLETION)
        ),
    )
    router = """
    @hookimpl
    def route(self, ctx):
        return RoutingDecision([Candidate("up", "gpt-4o"), Candidate("up", "gpt-4o-mini")], "chain")

    @hookimpl
    def post_response(self, ctx):
        CALLS.extend(f"{a.model}:{a.status}:{a.retryable}" for a in ctx.attempts)
    """
    toml = config(url) + plugin_file(tmp_path, "router", router)
    async with run_gateway(toml, tmp_path) as gw:
        resp = await _chat(gw)
    assert resp.status_code == 200
    assert CALLS == ["gpt-4o:503:True", "gpt-4o-mini:200:False"]


async def test_pre_forward_can_answer_without_forwarding(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    cache = """
    @hookimpl
    def pre_forward(self, ctx):
        import msgspec
        doc = {"id": "x", "object": "chat.completion", "created": 0, "model": ctx.requested_model,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "cached!"},
                            "finish_reason": "stop"}]}
        ctx.response = ReadyResponse(msgspec.json.encode(doc))
    """
    toml = config(url) + plugin_file(tmp_path, "cache", cache)
    async with run_gateway(toml, tmp_path) as gw:
        resp = await _chat(gw)
        assert resp.json()["choices"][0]["message"]["content"] == "cached!"
        streamed = await _chat(gw, stream=True)
        assert b'"cached!"' in streamed.content and streamed.content.endswith(b"data: [DONE]\n\n")
    assert fake.requests == []


async def test_pre_forward_can_change_a_body_field(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    redact = """
    @hookimpl
    def pre_forward(self, ctx):
        ctx.set_field("messages", [{"role": "user", "content": "[redacted]"}])
    """
    toml = config(url) + plugin_file(tmp_path, "redact", redact)
    async with run_gateway(toml, tmp_path) as gw:
        await _chat(gw, temperature=0.5)
    sent = fake.requests[0].json()
    assert sent["messages"] == [{"role": "user", "content": "[redacted]"}]
    assert sent["temperature"] == 0.5


async def test_wrap_stream_transforms_the_stream(upstream, tmp_path: Path) -> None:
    fake, url = upstream

    async def events() -> AsyncIterator[bytes]:
        from tests.core.test_proxy_openai import chunk
        from tests.support import sse

        yield sse(chunk("hello")) + b"data: [DONE]\n\n"

    fake.on("/v1/chat/completions", lambda r: Reply.sse(events()))
    upper = """
    @hookimpl
    def wrap_stream(self, ctx, stream):
        async def shout():
            async for chunk in stream:
                yield chunk.replace(b"hello", b"HELLO")
        return shout()
    """
    toml = config(url) + plugin_file(tmp_path, "upper", upper)
    async with run_gateway(toml, tmp_path) as gw:
        resp = await _chat(gw, stream=True)
    assert b'"HELLO"' in resp.content


async def test_lifecycle_routes_and_providers_hooks(tmp_path: Path) -> None:
    lifecycle = """
    @hookimpl
    async def startup(self, services):
        CALLS.append(f"startup:{services.store is not None}")

    @hookimpl
    def shutdown(self, services):
        CALLS.append("shutdown")

    @hookimpl
    def register_routes(self):
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        async def hello(request):
            return PlainTextResponse("hello from a plugin")
        return [Route("/admin/hello", hello)]

    from interlock.core.providers.mock import MockProvider as _Mock
    provider_kinds = {"echo": type("Echo", (_Mock,), {"kind": "echo"})}
    """
    toml = '[[providers]]\nname = "e"\nkind = "echo"\nmodels = ["echo-1"]\n' + plugin_file(
        tmp_path, "life", lifecycle
    )
    async with run_gateway(toml, tmp_path) as gw:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{gw}/admin/hello")).text == "hello from a plugin"
            resp = await client.post(
                f"{gw}/v1/chat/completions", json={"model": "echo-1", "messages": HI}
            )
            assert resp.json()["model"] == "echo-1"
    assert CALLS == ["startup:True", "shutdown"]


def test_plugin_found_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built-in and third-party plugins are found the same way: `interlock.plugins`."""
    site = tmp_path / "site"
    (site / "third_party_router").mkdir(parents=True)
    (site / "third_party_router" / "__init__.py").write_text(
        textwrap.dedent("""
        from interlock.core import Plugin, hookimpl
        class ThirdParty(Plugin):
            name = "third"
            @hookimpl
            def pre_auth(self, ctx):
                pass
    """)
    )
    dist = site / "third_party_router-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: third-party-router\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[interlock.plugins]\nthird = third_party_router:ThirdParty\n"
    )
    monkeypatch.syspath_prepend(str(site))
    app = create_app(gateway_config("[plugins.third]\n", tmp_path))
    classes = app.state.gateway.plugin_classes
    assert [cls.__name__ for _, cls, _ in classes] == ["ThirdParty"]
    sys.modules.pop("third_party_router", None)


def test_a_hookimpl_with_a_typo_stops_start_up(tmp_path: Path) -> None:
    typo = """
    @hookimpl
    def pre_auht(self, ctx):
        pass
    """
    with pytest.raises(ConfigError, match="pre_auht"):
        create_app(gateway_config(plugin_file(tmp_path, "typo", typo), tmp_path))


async def test_serves_over_hypercorn_with_no_plugins_at_all(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    app = create_app(gateway_config(config(url), tmp_path))
    plans = app.state.gateway.plans
    assert plans.pre_auth == plans.route == plans.pre_forward == plans.post_response == ()
    async with serve_asgi(app) as gw:
        assert (await _chat(gw)).status_code == 200
