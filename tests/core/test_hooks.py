"""The hook contract: plugins.toml order, async hooks awaited, disabled plugins absent,
route as firstresult, and every hook point doing what hookspecs.py says."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from interlock.core import Candidate, RoutingDecision
from interlock.core.app import create_app
from interlock.core.config import ConfigError
from tests.core.test_proxy_openai import COMPLETION, chunk, config
from tests.support import (
    GUARD,
    Recorded,
    Reply,
    gateway_config,
    local_plugin,
    run_gateway,
    serve_asgi,
    sse,
    sse_events,
)

HI = [{"role": "user", "content": "hi"}]
CALLS: list[str] = []  # what the plugins below record; cleared per test
ENDED: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)  # set by plugins
SHARED = RoutingDecision([Candidate("up", "gpt-4o")], "shared")  # one object, every request


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()
    ENDED.clear()


def plugin_file(tmp_path: Path, name: str, body: str) -> str:
    """A local-file plugin `name` with the class body `body`; it may append to CALLS."""
    return local_plugin(
        tmp_path, name, body, "from tests.core.test_hooks import CALLS, ENDED, SHARED\n"
    )


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


SHOUT = """
@hookimpl
def wrap_stream(self, ctx, stream):
    CALLS.append(f"wrap:{ctx.wire}")
    async def shout():
        try:
            async for chunk in stream:
                yield chunk.replace(b"hello", b"HELLO")
        finally:
            CALLS.append("close")
    return shout()

@hookimpl
def post_response(self, ctx):
    CALLS.append(f"post_response:{ctx.status}")
"""


async def _hello_stream(r: object) -> Reply:
    async def events() -> AsyncIterator[bytes]:
        yield sse(chunk("hello"))
        yield sse(chunk(None, "stop")) + b"data: [DONE]\n\n"

    return Reply.sse(events())


@pytest.mark.parametrize("inbound", ["openai", "anthropic"])
async def test_wrap_stream_transforms_the_stream(upstream, tmp_path: Path, inbound: str) -> None:
    """The wrapper sees canonical events (`ctx.wire` "openai", also for an Anthropic
    caller), what it yields is all the client gets, and it is closed before post_response."""
    fake, url = upstream
    fake.on("/v1/chat/completions", _hello_stream)
    toml = config(url) + plugin_file(tmp_path, "upper", SHOUT)
    path = "/v1/chat/completions" if inbound == "openai" else "/v1/messages"
    body = {"model": "gpt-4o", "messages": HI, "stream": True, "max_tokens": 16}
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(gw + path, json=body)
    assert b"hello" not in resp.content
    events = sse_events(resp.content)
    if inbound == "openai":
        assert [e["choices"][0]["delta"].get("content") for _, e in events[:-1]] == ["HELLO", None]
        assert events[-1] == (None, b"[DONE]")
    else:
        texts = [e["delta"]["text"] for name, e in events if name == "content_block_delta"]
        assert texts == ["HELLO"]
    assert CALLS == ["wrap:openai", "close", "post_response:200"]


LAYER = """
@hookimpl
def wrap_stream(self, ctx, stream):
    name = self.name
    async def layer():
        try:
            async for chunk in stream:
                yield chunk.replace(b'"content":"', f'"content":"{name}>'.encode())
                if b"[DONE]" in chunk:
                    return  # done: the layers beneath are left suspended, for the core to close
                if ctx.headers.get("x-pause") == name:
                    await asyncio.Event().wait()  # a slow async check of each event
        finally:
            CALLS.append(f"close:{name}")
    return layer()
"""
AUDIT = """
@hookimpl
def post_response(self, ctx):
    CALLS.append(f"post_response:{ctx.status}")
    ENDED["audit"].set()
"""


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # The outermost layer stops at [DONE]: the core closes the other two, in order.
        ("completed", ["close:l3", "close:l2", "close:l1", "post_response:200"]),
        # The client leaves while the outermost layer is busy: it is cancelled, the
        # layers beneath are closed by the core, outermost first.
        ("gone-while-outer-layer-waits", ["close:l3", "close:l2", "close:l1", "post_response:499"]),
        # The client leaves while the upstream is silent: the cancellation unwinds the
        # layers from the innermost out (Python's order); all before post_response still.
        ("gone-while-upstream-waits", ["close:l1", "close:l2", "close:l3", "post_response:499"]),
    ],
)
async def test_every_wrap_stream_layer_is_closed_before_post_response(
    upstream, tmp_path: Path, case: str, expected: list[str]
) -> None:
    fake, url = upstream

    async def answer(r: object) -> Reply:
        async def events() -> AsyncIterator[bytes]:
            yield sse(chunk("hi"))
            if case == "gone-while-upstream-waits":
                await asyncio.Event().wait()
            yield sse(chunk(None, "stop")) + b"data: [DONE]\n\n"

        return Reply.sse(events())

    fake.on("/v1/chat/completions", answer)
    toml = config(url) + "".join(plugin_file(tmp_path, n, LAYER) for n in ("l1", "l2", "l3"))
    toml += plugin_file(tmp_path, "audit", AUDIT)
    body = {"model": "gpt-4o", "messages": HI, "stream": True}
    headers = {"x-pause": "l3"} if case == "gone-while-outer-layer-waits" else {}
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        async with client.stream(
            "POST", f"{gw}/v1/chat/completions", json=body, headers=headers
        ) as resp:
            if case == "completed":
                content = await resp.aread()
            else:
                content = await asyncio.wait_for(anext(resp.aiter_bytes()), GUARD)
        await asyncio.wait_for(ENDED["audit"].wait(), GUARD)
    # l1 wraps the upstream's events, l2 wraps l1, l3 wraps l2: l3 is the outermost.
    assert b'"content":"l3>l2>l1>hi"' in content
    assert expected == CALLS


SHARING = """
@hookimpl
def route(self, ctx):
    return SHARED  # the same object for every request, as a router with a cache would

@hookimpl
def pre_forward(self, ctx):
    ctx.decision.candidates.append(Candidate("up", "gpt-4o-mini"))  # a failover plugin

@hookimpl
def post_response(self, ctx):
    CALLS.append(",".join(c.model for c in ctx.decision.candidates) + ":" + ctx.decision.reason)
"""


async def test_a_shared_decision_returned_by_a_router_is_never_mutated(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = config(url) + plugin_file(tmp_path, "sharing", SHARING)
    async with run_gateway(toml, tmp_path) as gw:
        for _ in range(3):
            assert (await _chat(gw)).status_code == 200
    assert CALLS == ["gpt-4o,gpt-4o-mini:shared"] * 3  # each request edited its own copy
    assert RoutingDecision([Candidate("up", "gpt-4o")], "shared") == SHARED


# -- on_attempt ------------------------------------------------------------------------------
TWO_PROVIDERS = """
[[providers]]
name = "b"
kind = "openai"
base_url = "{url}/v1"
api_key = "sk-test-upstream-key-0001"
models = ["good"]
"""
CHAIN = """
@hookimpl
def route(self, ctx):
    return RoutingDecision(
        [Candidate("up", "bad-1"), Candidate("up", "bad-2"), Candidate("b", "good")], "chain"
    )
"""


def _by_model(r: Recorded) -> Reply:
    """bad-1 is overloaded (503), bad-2 fails (500), anything else answers."""
    doc = r.json()
    if doc["model"] == "bad-1":
        return Reply.json({"error": {"message": "overloaded"}}, 503)
    if doc["model"] == "bad-2":
        return Reply.json({"error": {"message": "boom"}}, 500)
    if not doc.get("stream"):
        return Reply.json(COMPLETION)

    async def events() -> AsyncIterator[bytes]:
        yield sse(chunk("hi")) + sse(chunk(None, "stop")) + b"data: [DONE]\n\n"

    return Reply.sse(events())


ATTEMPTS = """
@hookimpl
def pre_forward(self, ctx):
    CALLS.append("pre_forward")

@hookimpl
async def on_attempt(self, ctx, attempt):
    await asyncio.sleep(0)
    last = ctx.attempts[-1] is attempt
    a = attempt
    CALLS.append(f"{a.provider}/{a.model}:{a.status}:{a.error}:{a.retryable}:{last}")

@hookimpl
def post_response(self, ctx):
    CALLS.append(f"post_response:{ctx.status}")
"""
BROKEN = """
@hookimpl
def on_attempt(self, ctx, attempt):
    raise RuntimeError("a broken breaker")
"""


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_on_attempt_runs_after_every_attempt_in_order(
    upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    """Awaited when async, with each attempt's outcome, as it happens (before the next
    try); a failing implementation is logged and the others still run."""
    fake, url = upstream
    fake.on("/v1/chat/completions", _by_model)
    toml = (
        config(url)
        + TWO_PROVIDERS.format(url=url)
        + plugin_file(tmp_path, "chain", CHAIN)
        + plugin_file(tmp_path, "broken", BROKEN)
        + plugin_file(tmp_path, "attempts", ATTEMPTS)
    )
    async with run_gateway(toml, tmp_path) as gw:
        assert (await _chat(gw, stream=stream)).status_code == 200
    assert CALLS == [
        "pre_forward",
        "up/bad-1:503:overloaded_error:True:True",
        "up/bad-2:502:upstream_error:True:True",
        "b/good:200:None:False:True",
        "post_response:200",
    ]
    lines = [msgspec.json.decode(x) for x in capsys.readouterr().out.splitlines() if x[:1] == "{"]
    failures = [line for line in lines if line["event"] == "on_attempt_failed"]
    assert len(failures) == 3 and all("a broken breaker" in f["error"] for f in failures)


BREAKER = """
@hookimpl
def on_attempt(self, ctx, attempt):
    if attempt.status < 500:
        return
    candidates = ctx.decision.candidates
    how = ctx.headers["x-edit"]
    if how == "remaining-only":
        done = len(ctx.attempts)
        candidates[done:] = [c for c in candidates[done:] if c.provider != attempt.provider]
    elif how == "in-place":
        candidates[:] = [c for c in candidates if c.provider != attempt.provider]
    else:
        ctx.decision.candidates = [c for c in candidates if c.provider != attempt.provider]

@hookimpl
def post_response(self, ctx):
    CALLS.extend(f"{a.provider}/{a.model}:{a.status}" for a in ctx.attempts)
"""


@pytest.mark.parametrize("edit", ["remaining-only", "in-place", "rebound"])
async def test_on_attempt_can_drop_the_remaining_candidates_of_a_failing_provider(
    upstream, tmp_path: Path, edit: str
) -> None:
    """A circuit breaker removes provider `up` after its first failure: `up`'s second
    candidate is never tried, whichever way the plugin edits the list."""
    fake, url = upstream
    fake.on("/v1/chat/completions", _by_model)
    toml = (
        config(url)
        + TWO_PROVIDERS.format(url=url)
        + plugin_file(tmp_path, "chain", CHAIN)
        + plugin_file(tmp_path, "breaker", BREAKER)
    )
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(
            f"{gw}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HI},
            headers={"x-edit": edit},
        )
    assert resp.status_code == 200
    assert CALLS == ["up/bad-1:503", "b/good:200"]
    assert [r.json()["model"] for r in fake.requests] == ["bad-1", "good"]


# -- transform_response --------------------------------------------------------------------
SHOUTING = """
@hookimpl
async def transform_response(self, ctx, body):
    await asyncio.sleep(0)
    CALLS.append(f"shout:{ctx.wire}")
    return body.replace(b'"hello"', b'"HELLO"')
"""
WATCHING = """
@hookimpl
def transform_response(self, ctx, body):
    CALLS.append(f"watch:{b'HELLO' in body}")
    return None  # leaves the (already transformed) answer alone
"""


def _transformers(tmp_path: Path) -> str:
    return plugin_file(tmp_path, "shout", SHOUTING) + plugin_file(tmp_path, "watch", WATCHING)


@pytest.mark.parametrize("inbound", ["openai", "anthropic"])
async def test_transform_response_rewrites_a_whole_answer(
    upstream, tmp_path: Path, inbound: str
) -> None:
    """In plugins.toml order, each seeing the previous result, an async one awaited; the
    canonical answer it returns is what the caller gets, in the caller's format."""
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = config(url) + _transformers(tmp_path)
    path = "/v1/chat/completions" if inbound == "openai" else "/v1/messages"
    body = {"model": "gpt-4o", "messages": HI, "max_tokens": 9}
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(gw + path, json=body)
    assert resp.status_code == 200
    if inbound == "openai":
        assert resp.json()["choices"][0]["message"]["content"] == "HELLO"
    else:
        assert resp.json()["content"] == [{"type": "text", "text": "HELLO"}]
    assert CALLS == ["shout:openai", "watch:True"]


async def test_transform_response_is_not_called_for_streams(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", _hello_stream)
    toml = config(url) + _transformers(tmp_path)
    async with run_gateway(toml, tmp_path) as gw:
        resp = await _chat(gw, stream=True)
    assert resp.status_code == 200 and b'"hello"' in resp.content
    assert CALLS == []


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
