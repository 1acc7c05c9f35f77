"""X-Forwarded-For is believed only from `[server] trusted_proxies`, and both profiles
(hypercorn and the fast profile's uvicorn) agree: by default nobody is trusted, loopback
included (uvicorn alone would trust it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlock.core.cli import CONFIG_ENV
from interlock.core.config import ConfigError
from interlock.core.proxy_headers import TrustedProxies, create_served_app
from tests.support import GUARD, gateway_config, serve_asgi

FORWARDED = [(b"x-forwarded-for", b"203.0.113.7, 10.1.2.3"), (b"x-forwarded-proto", b"https")]


async def seen_by_app(trusted: list[str], client: tuple[str, int] | None, headers: Any) -> Any:
    """The scope the app behind the middleware gets for one request."""
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(scope)

    scope = {"type": "http", "scheme": "http", "client": client, "headers": headers}
    await TrustedProxies(app, trusted)(scope, None, None)
    return got[0]


@pytest.mark.parametrize(
    ("trusted", "peer", "client", "scheme"),
    [
        (["127.0.0.1"], "127.0.0.1", "10.1.2.3", "https"),  # the right-most untrusted hop
        (["127.0.0.1", "10.0.0.0/8"], "127.0.0.1", "203.0.113.7", "https"),
        (["10.0.0.0/8"], "127.0.0.1", "127.0.0.1", "http"),  # the peer is not a proxy
        (["::1"], "::1", "10.1.2.3", "https"),
        (["127.0.0.1", "10.0.0.0/8", "203.0.113.0/24"], "127.0.0.1", "203.0.113.7", "https"),
    ],
)
async def test_forwarded_headers_count_only_from_trusted_proxies(
    trusted: list[str], peer: str, client: str, scheme: str
) -> None:
    scope = await seen_by_app(trusted, (peer, 5000), FORWARDED)
    assert scope["client"][0] == client
    assert scope["scheme"] == scheme


async def test_several_forwarded_for_headers_are_one_list() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"10.0.0.5")]
    scope = await seen_by_app(["127.0.0.1", "10.0.0.0/8"], ("127.0.0.1", 1), headers)
    assert scope["client"][0] == "198.51.100.1"


async def test_odd_inputs_leave_the_peer_alone() -> None:
    for headers in ([], [(b"x-forwarded-for", b" , ,")], [(b"x-forwarded-proto", b"gopher")]):
        scope = await seen_by_app(["127.0.0.1"], ("127.0.0.1", 1), headers)
        assert scope["client"] == ("127.0.0.1", 1) and scope["scheme"] == "http"
    assert (await seen_by_app(["127.0.0.1"], None, FORWARDED))["client"] is None
    lifespan = {"type": "lifespan"}
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(scope)

    await TrustedProxies(app, ["127.0.0.1"])(lifespan, None, None)
    assert got == [lifespan]


def test_the_app_is_wrapped_only_when_proxies_are_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plugins.toml"
    store = f'[store]\nurl = "sqlite:///{tmp_path}/db.sqlite"\n'
    monkeypatch.setenv(CONFIG_ENV, str(path))
    path.write_text(store)
    assert not isinstance(create_served_app(), TrustedProxies)
    path.write_text(store + '[server]\ntrusted_proxies = ["10.0.0.0/8"]\n')
    assert isinstance(create_served_app(), TrustedProxies)


@pytest.mark.parametrize("bad", ["localhost", "10.0.0.0/33", "", "1.2.3.4.5"])
def test_a_bad_proxy_address_stops_start_up(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=r"\[server\] key `trusted_proxies`: .* is not an IP"):
        gateway_config(f'[server]\ntrusted_proxies = ["{bad}"]\n', tmp_path)


# -- both servers, as `interlock serve` runs them -------------------------------------------------
ECHO = """
import msgspec
from interlock.core import Plugin, ReadyResponse, hookimpl

class Echo(Plugin):
    name = "echo"

    @hookimpl
    def pre_forward(self, ctx):
        message = {"role": "assistant", "content": ctx.client}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        doc = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
               "choices": [choice]}
        ctx.response = ReadyResponse(msgspec.json.encode(doc))
"""


def echo_config(tmp_path: Path, name: str, trusted: str) -> Path:
    (tmp_path / "echo.py").write_text(textwrap.dedent(ECHO))
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[server]\ntrusted_proxies = {trusted}\n[store]\nurl = "sqlite:///{tmp_path}/{name}.db"\n'
        '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["m"]\n'
        f'[plugins.echo]\npath = "{tmp_path / "echo.py"}"\n'
    )
    return path


async def client_address(url: str) -> str:
    transport = httpx.AsyncHTTPTransport(retries=50)  # the fast profile binds after its banner
    async with httpx.AsyncClient(transport=transport, timeout=GUARD) as client:
        resp = await client.post(
            f"{url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-forwarded-for": "203.0.113.7"},
        )
    content: str = resp.json()["choices"][0]["message"]["content"]
    return content


@contextlib.asynccontextmanager
async def fast_profile(config: Path, cwd: Path) -> AsyncIterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlock.core.cli",
        "serve",
        "--fast",
        "--config",
        str(config),
        "--port",
        str(port),
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    assert proc.stderr is not None
    assert b"fast profile" in await asyncio.wait_for(proc.stderr.readline(), GUARD)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), GUARD)


async def served(profile: str, trusted: str, tmp_path: Path) -> str:
    """The client address the gateway sees through `interlock serve`'s app and server:
    uvicorn as a real `serve --fast` process (its own default was the problem), hypercorn
    in this process, serving the same `create_served_app()` its workers import."""
    config = echo_config(tmp_path, f"{profile}-{len(trusted)}", trusted)
    if profile == "fast":
        async with fast_profile(config, tmp_path) as url:
            return await client_address(url)
    os.environ[CONFIG_ENV] = str(config)
    try:
        app = create_served_app()
    finally:
        del os.environ[CONFIG_ENV]
    async with serve_asgi(app) as url:
        return await client_address(url)


async def test_both_profiles_agree_on_the_client_address(tmp_path: Path) -> None:
    runs = [
        ("default", "[]"),
        ("fast", "[]"),
        ("default", '["127.0.0.1"]'),
        ("fast", '["127.0.0.1"]'),
    ]
    seen = [await served(p, t, tmp_path) for p, t in runs if p == "default"]
    seen += await asyncio.gather(*(served(p, t, tmp_path) for p, t in runs if p == "fast"))
    # Nobody trusted: the TCP peer, whatever the header says (uvicorn's own default
    # would have believed loopback); loopback trusted: the forwarded address.
    assert seen == ["127.0.0.1", "203.0.113.7", "127.0.0.1", "203.0.113.7"]
