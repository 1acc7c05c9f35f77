"""The router layer's reference scenario, end to end, against fake upstreams on loopback.

    python examples/router_demo.py

One process starts three fake providers (OpenAI, Anthropic and Google, each an
OpenAI-format server on a port the OS picks, able to fail on cue) and the gateway with
cost_router (simple -> gpt-4o-mini, medium -> gpt-4o, complex -> claude-opus-4-6) and
failover (chain gpt-4o -> claude-sonnet-4-6 -> gemini-1.5-pro, circuits open after two
failures in a row, a one-second cool-down for the demo). It then sends requests and
prints, for each, the route taken, why, and every attempt. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import tomllib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from interlock.core.app import create_app
from interlock.core.config import parse_config

MASTER_KEY = "demo-master-key-not-a-secret"
DOWN: set[str] = set()  # model names the fake providers fail with a 500 right now

CONFIG = """
[logging]
format = "console"
level = "error"

[store]
url = "sqlite://"

[[providers]]
name = "openai"
kind = "openai-compatible"
base_url = "{openai}/v1"
models = ["gpt-4o-mini", "gpt-4o"]

[[providers]]
name = "anthropic"
kind = "openai-compatible"
base_url = "{anthropic}/v1"
models = ["claude-opus-4-6", "claude-sonnet-4-6"]

[[providers]]
name = "google"
kind = "openai-compatible"
base_url = "{google}/v1"
models = ["gemini-1.5-pro"]

[plugins.cost_router]
tiers = [ {{ below = 0.3, model = "gpt-4o-mini" }},
          {{ below = 0.7, model = "gpt-4o" }},
          {{ below = 1.01, model = "claude-opus-4-6" }} ]

[plugins.failover]
chain = ["gpt-4o", "claude-sonnet-4-6", "gemini-1.5-pro"]
retries = 0
failure_threshold = 2
cooldown_s = 1.0
master_key = "env:INTERLOCK_DEMO_MASTER_KEY"
"""

SIMPLE = "What is the capital of France?"
MEDIUM = (
    "This raises KeyError on items without a price, fix it:\n"
    "```python\ndef total(items):\n    return sum(i['price'] for i in items)\n```"
)
COMPLEX = "Prove that there are infinitely many primes, step by step."


async def fake_provider(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An OpenAI-format upstream that answers, or fails with a 500 for models in DOWN."""
    if scope["type"] == "lifespan":
        while True:
            event = (await receive())["type"]
            if event == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    model = json.loads(body)["model"]
    if model in DOWN:
        status, doc = 500, {"error": {"message": f"{model} is down", "type": "server_error"}}
    else:
        status, doc = (
            200,
            {
                "id": "chatcmpl-demo",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"an answer from {model}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
            },
        )
    payload = json.dumps(doc).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    config = HypercornConfig()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(app, config, shutdown_trigger=stop.wait))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        await task
        sock.detach()


async def ask(client: httpx.AsyncClient, gw: str, label: str, prompt: str) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
    resp = await client.post(f"{gw}/v1/chat/completions", json=body)
    h = resp.headers
    print(f"  {label:<8} -> {resp.status_code}  route={h.get('x-interlock-route', '-')}")
    print(f"{'':13}reason: {h.get('x-interlock-route-reason', '-')}")
    print(f"{'':13}attempts: {h.get('x-interlock-attempts', '0')}", end="")
    if resp.status_code != 200:
        print(f", retry-after: {h.get('retry-after')}, error: {resp.json()['error']['type']}")
    else:
        print(f", answer: {resp.json()['choices'][0]['message']['content']!r}")


async def circuits(client: httpx.AsyncClient, gw: str) -> None:
    resp = await client.get(
        f"{gw}/admin/circuits", headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    states = [
        f"{c['provider']}/{c['model']}={c['state']}"
        for c in resp.json()["circuits"]
        if c["state"] != "closed"
    ]
    print(f"  GET /admin/circuits: {', '.join(states) or 'all closed'}")


async def main() -> None:
    os.environ["INTERLOCK_DEMO_MASTER_KEY"] = MASTER_KEY
    async with (
        served(fake_provider) as openai,
        served(fake_provider) as anthropic,
        served(fake_provider) as google,
    ):
        toml = CONFIG.format(openai=openai, anthropic=anthropic, google=google)
        app = create_app(parse_config(tomllib.loads(toml), source="router_demo", base_dir="."))
        async with served(app) as gw, httpx.AsyncClient(timeout=10) as client:
            print("1. Each request goes to the cheapest tier that can serve it")
            for label, prompt in (("simple", SIMPLE), ("medium", MEDIUM), ("complex", COMPLEX)):
                await ask(client, gw, label, prompt)

            print("\n2. gpt-4o fails: the chain takes over (gpt-4o -> claude-sonnet-4-6)")
            DOWN.add("gpt-4o")
            await ask(client, gw, "medium", MEDIUM)
            await ask(client, gw, "medium", MEDIUM)
            await circuits(client, gw)

            print("\n3. gpt-4o's circuit is open: it is skipped without an attempt")
            await ask(client, gw, "medium", MEDIUM)

            print("\n4. claude-sonnet-4-6 fails too: gemini-1.5-pro is next in the chain")
            DOWN.add("claude-sonnet-4-6")
            await ask(client, gw, "medium", MEDIUM)

            print("\n5. Everything in the chain is down: failures, then a fast 503")
            DOWN.add("gemini-1.5-pro")
            for _ in range(3):
                await ask(client, gw, "medium", MEDIUM)
            await circuits(client, gw)

            print("\n6. The providers recover: after the cool-down a probe closes gpt-4o's circuit")
            print("   (the others stay half-open until a request needs them)")
            DOWN.clear()
            await asyncio.sleep(1.1)
            await ask(client, gw, "medium", MEDIUM)
            await circuits(client, gw)


if __name__ == "__main__":
    asyncio.run(main())
