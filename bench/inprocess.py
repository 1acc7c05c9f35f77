"""Interlock's own machinery per request, with the network taken out: `python -m bench.inprocess`.

The app is called as an ASGI callable in one event loop, and the provider's upstream
client is replaced by one that answers a canned chat.completion at once, so the figure
is what the gateway itself costs (Starlette routing, decoding, the context, the hook
plans, forwarding bookkeeping, pricing, the log line), without sockets, servers or the
noise of a shared VM. It runs with no plugins and with the trivial plugin on four
hooks, so the difference is the hook machinery's price. Prints CPU µs per request.

Then the policy plugins (rate_limit, budget, both), with `memory://` counters and, when
Redis answers on 127.0.0.1:6379, with `redis://`: CPU µs per request as above, and the
median wall-clock µs per request, which with Redis includes its round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tomllib
from pathlib import Path
from typing import Any

from bench.payloads import COMPLETION, REQUEST, encoded
from interlock.core.app import create_app
from interlock.core.config import parse_config

BENCH = Path(__file__).resolve().parent
BASE = """
[[providers]]
name = "up"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-bench"
models = ["{model}"]
"""


class _Canned:
    status = 200
    headers = {"content-type": "application/json"}

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def aclose(self) -> None:
        return None


class _CannedClient:
    """Stands in for the upstream client: the same answer, no I/O."""

    def __init__(self, body: bytes) -> None:
        self._reply = _Canned(body)

    async def send(self, *args: Any, **kwargs: Any) -> _Canned:
        return self._reply

    async def aclose(self) -> None:
        return None


async def per_request_us(plugins: str, n: int, tmp: Path) -> float:
    cpu, _ = await measure(plugins, n, tmp)
    return cpu


async def measure(
    plugins: str, n: int, tmp: Path, counters: str = "memory://", in_flight: int = 1
) -> tuple[float, float]:
    """(mean CPU µs, median wall-clock µs) per request, `in_flight` at a time."""
    import statistics
    import time

    body = encoded(REQUEST)
    model = REQUEST["model"]
    toml = BASE.format(model=model) + f'\n[store]\nurl = "sqlite:///{tmp}/bench.db"\n'
    toml += f'[counters]\nurl = "{counters}"\n' + plugins
    app = create_app(parse_config(tomllib.loads(toml), source="bench", base_dir=str(BENCH)))
    gateway = app.state.gateway
    await gateway.start()  # what the lifespan does: store, counters, plugins, plans
    gateway.log_setup.writer._stream = io.BytesIO()  # the log line is still made and queued
    gateway.providers["up"].client = _CannedClient(encoded(COMPLETION))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(min(n, 2000)):  # warm-up: caches, the default route, allocator
        await app(dict(scope), receive, send)
    walls: list[float] = []
    clock = time.perf_counter

    async def worker(count: int) -> None:
        for _ in range(count):
            began = clock()
            await app(dict(scope), receive, send)
            walls.append(clock() - began)

    calls = _redis_calls() if counters.startswith("redis") else 0
    start = time.process_time()
    if in_flight == 1:
        await worker(n)
    else:
        await asyncio.gather(*(worker(n // in_flight) for _ in range(in_flight)))
    us = (time.process_time() - start) / len(walls) * 1e6
    await gateway.close(hooks=True)  # the last settles are sent (and counted on Redis)
    gateway.log_setup.close()
    if counters.startswith("redis"):
        last_redis_calls[0] = (_redis_calls() - calls) / len(walls)
    return us, statistics.median(walls) * 1e6


# The policy plugins, every limit high enough never to refuse: the anonymous tenant gets
# the defaults (no auth plugin), so every request runs the whole check and settle path.
BENCH_TENANT = "interlock-bench"
RATE_LIMIT = f"""
[plugins.rate_limit]
tenant = {{ rpm = 1_000_000_000, tpm = 1_000_000_000_000 }}
anonymous_tenant = "{BENCH_TENANT}"
"""
BUDGET = f"""
[plugins.budget]
tenant_usd = 1e12
anonymous_tenant = "{BENCH_TENANT}"
"""
REDIS = "redis://127.0.0.1:6379/0"
last_redis_calls = [0.0]  # Redis script calls per request in the last redis:// measure


def _redis_answers() -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", 6379)) == 0


async def _drop_bench_keys() -> None:
    from redis.asyncio import Redis

    raw = Redis.from_url(REDIS)
    keys = [k async for k in raw.scan_iter(match=f"interlock:*{BENCH_TENANT}*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="requests per measurement")
    args = parser.parse_args()
    trivial = f'\n[plugins.trivial]\npath = "{BENCH}/plugins/trivial.py"\n'
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    with tempfile.TemporaryDirectory() as tmp:
        bare = run(per_request_us("", args.n, Path(tmp)))
        hooks = run(per_request_us(trivial, args.n, Path(tmp)))
    print(f"Interlock in-process, canned upstream, {args.n:,} requests:")
    print(f"  no plugins                  {bare:6.1f} µs CPU per request")
    print(f"  trivial plugin on 4 hooks   {hooks:6.1f} µs CPU per request ({hooks - bare:+.1f} µs)")
    policy(run, args.n)


def policy(run: Any, n: int) -> None:
    import tempfile

    backends = ["memory://"] + ([REDIS] if _redis_answers() else [])
    rows = [
        ("rate_limit", RATE_LIMIT),
        ("budget", BUDGET),
        ("rate_limit + budget", RATE_LIMIT + BUDGET),
    ]
    print("Policy plugins (mean CPU µs per request; median wall µs per request):")
    for counters in backends:
        with tempfile.TemporaryDirectory() as tmp:
            bare_cpu, bare_wall = run(measure("", n, Path(tmp), counters))
            label = counters.split(":")[0]
            print(
                f"  none ({label})              {bare_cpu:6.1f} µs CPU, median {bare_wall:6.1f} µs wall"
            )
            for name, plugins in rows:
                cpu, wall = run(measure(plugins, n, Path(tmp), counters))
                print(
                    f"  {name + f' ({label})':<27} {cpu:6.1f} µs CPU per request ({cpu - bare_cpu:+.1f} µs); "
                    f"median {wall:6.1f} µs wall ({wall - bare_wall:+.1f} µs)"
                )
        if counters == REDIS:
            with tempfile.TemporaryDirectory() as tmp:
                cpu, wall = run(measure(RATE_LIMIT + BUDGET, n, Path(tmp), counters, 64))
                per = last_redis_calls[0]
            print(
                f"  rate_limit + budget (redis), 64 in flight: {cpu:6.1f} µs CPU per request; "
                f"{per:.2f} Redis calls per request"
            )
            run(_drop_bench_keys())


def _redis_calls() -> int:
    """Script calls Redis has answered so far (INFO commandstats)."""
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


if __name__ == "__main__":
    main()
