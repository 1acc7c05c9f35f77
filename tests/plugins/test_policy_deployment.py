"""rate_limit and budget against their deployment: Redis going away mid-traffic (budget
fails closed, rate_limit as `on_counter_error` says), and `serve --workers N` refused
with in-process counters."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from tests.plugins.policy import (
    CANARY,
    Deployment,
    chat_body,
    gateways,
    post,
    toml,
    usage_reply,
    who,
)


class RedisProxy:
    """A TCP relay to the real Redis that the test can cut, like a Redis going away."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        except OSError:
            writer.close()
            return
        self.writers += [writer, up_writer]
        await asyncio.gather(
            _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
        )

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def redis_proxy() -> AsyncIterator[RedisProxy]:
    proxy = RedisProxy()
    await proxy.start()
    try:
        yield proxy
    finally:
        if proxy.server is not None and proxy.server.is_serving():
            await proxy.cut()


def _deployment(proxy: RedisProxy, tmp_path: Path) -> Deployment:
    with contextlib.suppress(OSError):
        import socket

        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            pass
        return Deployment(
            "redis", f"redis://127.0.0.1:{proxy.port}/0", f"sqlite:///{tmp_path}/g.db", 1
        )
    pytest.skip("Redis is not reachable at 127.0.0.1:6379")


ANTHROPIC = (
    b'{"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}'
)


@pytest.mark.services
async def test_budget_fails_closed_when_redis_goes_away(
    upstream, tenant: str, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    async with redis_proxy() as proxy:
        text = toml(url, _deployment(proxy, tmp_path), "\n[plugins.budget]\ntenant_usd = 100.0\n")
        async with gateways(text, tmp_path) as (gw,):
            async with httpx.AsyncClient() as client:
                assert (await post(client, gw, chat_body(), who(tenant))).status_code == 200
                await proxy.cut()
                openai = await post(client, gw, chat_body(), who(tenant))
                anthropic = await post(client, gw, ANTHROPIC, who(tenant), "/v1/messages")
    assert len(fake.requests) == 1  # nothing was forwarded once the budget could not be checked
    assert openai.status_code == 503
    assert openai.json()["error"]["type"] == "budget_unavailable"
    assert anthropic.status_code == 503
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "overloaded_error"
    for reply in (openai, anthropic):
        assert "6379" not in reply.text and CANARY not in reply.text


@pytest.mark.services
@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_rate_limit_follows_on_counter_error_when_redis_goes_away(
    upstream, tenant: str, tmp_path: Path, mode: str
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", usage_reply())
    plugins = f'\n[plugins.rate_limit]\ntenant = {{ rpm = 100 }}\non_counter_error = "{mode}"\n'
    async with redis_proxy() as proxy:
        text = toml(url, _deployment(proxy, tmp_path), plugins)
        async with gateways(text, tmp_path) as (gw,):
            with capture_logs() as logs:
                async with httpx.AsyncClient() as client:
                    assert (await post(client, gw, chat_body(), who(tenant))).status_code == 200
                    await proxy.cut()
                    replies = [await post(client, gw, chat_body(), who(tenant)) for _ in range(3)]
    if mode == "closed":
        assert [r.status_code for r in replies] == [503] * 3
        assert replies[0].json()["error"]["type"] == "rate_limit_unavailable"
        assert len(fake.requests) == 1
    else:
        assert [r.status_code for r in replies] == [200] * 3
        assert len(fake.requests) == 4
        assert not any(h.startswith("x-ratelimit") for h in replies[0].headers)
    down = [line for line in logs if line["event"] == "rate_limit_counters_down"]
    assert len(down) == 1  # once per outage, not once per request


@pytest.mark.parametrize("plugin", ["rate_limit", "budget"])
def test_several_workers_with_in_process_counters_are_refused(tmp_path: Path, plugin: str) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/g.db"\n[counters]\nurl = "memory://"\n[plugins.{plugin}]\n'
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "interlock.core.cli",
            "serve",
            "--config",
            str(config),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        f"[counters] key `url`: 2 workers with in-process counters would multiply the limits of {plugin}"
        in result.stderr
    )


def test_the_default_plugins_toml_tables_are_valid_when_switched_on(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "plugins.toml").read_text()
    for plugin in ("rate_limit", "budget"):
        table = f"[plugins.{plugin}]\nenabled = false\n"
        assert table in text
        text = text.replace(table, f"[plugins.{plugin}]\nenabled = true\n")
    text = text.replace('url = "sqlite:///interlock.db"', f'url = "sqlite:///{tmp_path}/g.db"')
    config = tmp_path / "plugins.toml"
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "interlock.core.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "plugins: rate_limit, budget" in result.stdout
