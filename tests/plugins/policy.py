"""What the rate_limit and budget tests share: gateways on both deployments, a fake
upstream that reports usage, requests with a test identity.

A deployment is either one gateway on in-process counters and a SQLite file, or TWO
gateways (two apps in this process, each with its own Redis pool and PostgreSQL pool,
as two replicas would have) sharing Redis and a PostgreSQL schema of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from interlock.core.app import create_app
from tests.support import Recorded, Reply, gateway_config, serve_asgi

IDENTITY = Path(__file__).with_name("identity_plugin.py")
PROBE = Path(__file__).with_name("probe_plugin.py")
# Set by the probe plugin after post_response, per tenant (tests create the events).
FINISHED: dict[str, asyncio.Event] = {}
REDIS_URL = "redis://127.0.0.1:6379/0"
CANARY = "sk-virtual-canary-7777"  # the caller's own key: must never show up anywhere
UPSTREAM_KEY = "sk-test-upstream-key-0000"


@dataclass
class Deployment:
    name: str  # "memory" | "redis"
    counters: str
    store: str
    instances: int


@dataclass
class Gw:
    url: str
    gateway: Any  # interlock.core.app.Gateway

    def plugin(self, name: str) -> Any:
        return next(p for p in self.gateway.plugins if p.name == name)


def toml(upstream: str, deployment: Deployment, plugins: str) -> str:
    return f"""
[counters]
url = "{deployment.counters}"

[store]
url = "{deployment.store}"

[[providers]]
name = "up"
kind = "openai"
base_url = "{upstream}/v1"
api_key = "{UPSTREAM_KEY}"
models = ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]

[plugins.test_identity]
path = "{IDENTITY}"
{plugins}

[plugins.test_probe]
path = "{PROBE}"
"""


@contextlib.asynccontextmanager
async def gateways(text: str, tmp_path: Path, n: int = 1) -> AsyncIterator[list[Gw]]:
    """`n` gateways on one configuration, each a real server on loopback."""
    async with contextlib.AsyncExitStack() as stack:
        out: list[Gw] = []
        async with httpx.AsyncClient() as client:
            for _ in range(n):
                app = create_app(gateway_config(text, tmp_path))
                url = await stack.enter_async_context(serve_asgi(app))
                # Answered once the lifespan has started: the plugins exist from here on.
                assert (await client.get(f"{url}/healthz")).status_code == 200
                out.append(Gw(url, app.state.gateway))
        yield out


def completion(prompt: int, completion_tokens: int, model: str = "gpt-4o") -> dict[str, Any]:
    return {
        "id": "chatcmpl-policy",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        },
    }


def usage_reply(
    completion_tokens: Callable[[int], int] = lambda max_tokens: max_tokens,
) -> Callable[[Recorded], Reply]:
    """An upstream whose usage is the gateway's own worst-case estimate: the prompt as
    four bytes a token of the body it received, and `completion_tokens(max_tokens)`."""

    def handler(rec: Recorded) -> Reply:
        body = rec.json()
        asked = body.get("max_completion_tokens") or body.get("max_tokens") or 16
        return Reply.json(completion(len(rec.body) // 4, completion_tokens(asked)))

    return handler


def chat_body(
    *, max_tokens: int | None = 1000, model: str = "gpt-4o", stream: bool = False, text: str = ""
) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": text or "x" * 396}],
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
    return msgspec.json.encode(body)


def who(
    tenant: str,
    *,
    key: str | None = None,
    limits: dict[str, dict[str, float]] | None = None,
    feature: str | None = None,
) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {CANARY}",
        "x-test-tenant": tenant,
    }
    if key is not None:
        headers["x-test-key"] = key
    if limits is not None:
        headers["x-test-limits"] = msgspec.json.encode(limits).decode()
    if feature is not None:
        headers["x-feature"] = feature
    return headers


async def post(
    client: httpx.AsyncClient, gw: Gw | str, body: bytes, headers: dict[str, str], path: str = ""
) -> httpx.Response:
    base = gw.url if isinstance(gw, Gw) else gw
    return await client.post(
        f"{base}{path or '/v1/chat/completions'}", content=body, headers=headers
    )
