"""Helpers shared by the cost_router and failover tests: several providers on ONE fake
upstream (each under its own path prefix), answers that name the model asked for, a
recorder plugin that keeps each request's final context, and a gateway handle that
exposes the running plugins (to read their state or replace their clock)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from interlock.core.app import create_app
from tests.support import FakeUpstream, Recorded, Reply, gateway_config, serve_asgi, sse

HERE = Path(__file__).resolve().parent
RECORDER = HERE / "recorder.py"
EXAMPLE_ROUTER = HERE.parents[1] / "examples" / "length_router.py"
HI = [{"role": "user", "content": "hi"}]
PROOF = [{"role": "user", "content": "Prove that there are infinitely many primes, step by step."}]
# What the recorder plugin saw at post_response, one dict per request.
RECORDS: list[dict[str, Any]] = []


def provider(name: str, url: str, models: list[str], extra: str = "") -> str:
    return f"""
[[providers]]
name = "{name}"
kind = "openai"
base_url = "{url}/{name}/v1"
api_key = "sk-test-{name}-key-00000000"
models = {json.dumps(models)}
{extra}
"""


def completion(model: str, text: str = "hello") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


async def stream_of(model: str) -> AsyncIterator[bytes]:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model}
    for piece in ("Hel", "lo"):
        yield sse(
            {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        )
    yield sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    yield sse(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
    )
    yield b"data: [DONE]\n\n"


def ok(rec: Recorded) -> Reply:
    doc = rec.json()
    if doc.get("stream"):
        return Reply.sse(stream_of(doc["model"]))
    return Reply.json(completion(doc["model"]))


def answer(fake: FakeUpstream, name: str, handler: Callable[[Recorded], Any] = ok) -> None:
    fake.on(f"/{name}/v1/chat/completions", handler)


def served(fake: FakeUpstream) -> list[str]:
    """`provider/model` of every request the upstream received, in order."""
    return [f"{r.path.split('/')[1]}/{r.json()['model']}" for r in fake.requests]


def recorder() -> str:
    return f'\n[plugins.recorder]\npath = "{RECORDER}"\n'


IDENTITY_PLUGIN = '''
from interlock.core import Identity, Plugin, hookimpl


class TenantFromHeader(Plugin):
    """Tests only: the caller's tenant (and allowed models) come from headers."""

    name = "tenant_header"

    @hookimpl
    def pre_auth(self, ctx):
        tenant = ctx.headers.get("x-tenant")
        if tenant:
            models = [m for m in ctx.headers.get("x-models", "").split(",") if m]
            ctx.identity = Identity(tenant=tenant, models=models)
'''


def identity_plugin(tmp_path: Path) -> str:
    path = tmp_path / "tenant_header.py"
    path.write_text(IDENTITY_PLUGIN)
    return f'\n[plugins.tenant_header]\npath = "{path}"\n'


@dataclass
class Gateway:
    url: str
    app: Any
    client: httpx.AsyncClient
    records: list[dict[str, Any]] = field(default_factory=lambda: RECORDS)

    def plugin(self, name: str) -> Any:
        return next(p for p in self.app.state.gateway.plugins if p.name == name)

    async def chat(
        self, messages: list[Any] | None = None, model: str = "auto", **kw: Any
    ) -> httpx.Response:
        headers = kw.pop("headers", None)
        body = {"model": model, "messages": messages or HI, **kw}
        return await self.client.post(f"{self.url}/v1/chat/completions", json=body, headers=headers)

    async def messages(
        self, messages: list[Any] | None = None, model: str = "auto", **kw: Any
    ) -> httpx.Response:
        headers = kw.pop("headers", None)
        body = {"model": model, "max_tokens": 256, "messages": messages or HI, **kw}
        return await self.client.post(f"{self.url}/v1/messages", json=body, headers=headers)


@contextlib.asynccontextmanager
async def gateway(toml: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    RECORDS.clear()
    app = create_app(gateway_config(toml, tmp_path))
    async with serve_asgi(app) as url, httpx.AsyncClient(timeout=10.0) as client:
        # The lifespan (plugins made) has run once the server answers.
        assert (await client.get(f"{url}/healthz")).status_code == 200
        yield Gateway(url, app, client)


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps:
    """Stands in for asyncio.sleep in failover: records each wait, waits for nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
