"""Interlock's own machinery per request, with the network taken out: `python -m bench.inprocess`.

The app is called as an ASGI callable in one event loop, and the provider's upstream
client is replaced by one that answers a canned chat.completion at once, so the figure
is what the gateway itself costs (Starlette routing, decoding, the context, the hook
plans, forwarding bookkeeping, pricing, the log line), without sockets, servers or the
noise of a shared VM. It runs with no plugins and with the trivial plugin on four
hooks, so the difference is the hook machinery's price, then with the router layer
(cost_router routing "auto" by its tiers, and with failover too). Prints CPU µs per
request; for the router layer also the median µs of its own hooks per request, timed
one request at a time on a prepared context, and with tenant_auth (a virtual key on every
request; found in its cache, or looked up in the SQLite store every time) and the median
of tenant_auth's own hooks.

Then the policy plugins (rate_limit, budget, both), with `memory://` counters and, when
Redis answers on 127.0.0.1:6379, with `redis://`: CPU µs per request as above, the
median wall-clock µs per request (with Redis, its round trips included), and the Redis
calls per request with 64 requests in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tomllib
from pathlib import Path
from typing import Any

import msgspec

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


ROUTER = """
[plugins.cost_router]
tiers = [ { below = 0.3, model = "gpt-4o-mini" }, { below = 1.01, model = "gpt-4o-mini" } ]
"""
FAILOVER = """
[plugins.failover]
chain = ["gpt-4o-mini"]
"""
AUTO = {**REQUEST, "model": "auto"}

TENANT_AUTH = (
    '\n[plugins.tenant_auth]\nmaster_key = ""\ncache_ttl_s = {ttl}\nnegative_cache_ttl_s = {ttl}\n'
)


async def _virtual_key(gateway: Any) -> list[tuple[bytes, bytes]]:
    """A tenant and key in the gateway's store: the header every request then carries."""
    from interlock.plugins.tenant_auth.directory import Directory
    from interlock.plugins.tenant_auth.models import KeyCreate, TenantCreate

    directory = Directory(gateway.services.store)
    if await directory.get_tenant("bench") is None:
        await directory.create_tenant(TenantCreate(name="bench"))
    made = await directory.create_key(KeyCreate(tenant="bench"))
    return [(b"authorization", f"Bearer {made.key}".encode())]


def _scope(body: bytes, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of a POST /v1/chat/completions carrying `body`."""
    return {
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
            *extra,
        ],
    }


async def per_request_us(
    plugins: str, n: int, tmp: Path, request: dict[str, Any] = REQUEST
) -> float:
    import time

    body = encoded(request)
    model = REQUEST["model"]
    toml = BASE.format(model=model) + f'\n[store]\nurl = "sqlite:///{tmp}/bench.db"\n' + plugins
    app = create_app(parse_config(tomllib.loads(toml), source="bench", base_dir=str(BENCH)))
    gateway = app.state.gateway
    await gateway.start()  # what the lifespan does: store, counters, plugins, plans
    gateway.log_setup.writer._stream = io.BytesIO()  # the log line is still made and queued
    gateway.providers["up"].client = _CannedClient(encoded(COMPLETION))
    auth = await _virtual_key(gateway) if "tenant_auth" in plugins else []
    scope = _scope(body, auth)
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(min(n, 2000)):  # warm-up: caches, the default route, allocator
        await app(dict(scope), receive, send)
    start = time.process_time()
    for _ in range(n):
        await app(dict(scope), receive, send)
    us = (time.process_time() - start) / n * 1e6
    await gateway.close(hooks=True)
    gateway.log_setup.close()
    return us


async def router_hooks_us(n: int, tmp: Path) -> tuple[float, float]:
    """Median µs per request of the router layer's own hooks: cost_router's route (score,
    tier, order) plus its other hooks, and failover's pre_forward, on_attempt and
    post_response (memory:// circuits), each request timed on its own."""
    import statistics
    import time

    from interlock.core import Attempt, RequestContext, RoutingDecision
    from interlock.core.context import ChatHead

    body = encoded(AUTO)
    head = msgspec.json.decode(body, type=ChatHead)
    toml = BASE.format(model=REQUEST["model"]) + f'\n[store]\nurl = "sqlite:///{tmp}/r.db"\n'
    app = create_app(
        parse_config(tomllib.loads(toml + ROUTER + FAILOVER), source="bench", base_dir=str(BENCH))
    )
    gateway = app.state.gateway
    await gateway.start()
    router, failover = gateway.plugins
    route_only: list[float] = []
    layer: list[float] = []
    clock = time.perf_counter
    for i in range(n + 2000):
        ctx = RequestContext(
            request_id="r",
            inbound="openai",
            endpoint="chat",
            path="/v1/chat/completions",
            headers={},
            client=None,
        )
        ctx.set_body(body, head)
        start = clock()
        decision = router.route(ctx)
        routed = clock()
        ctx.decision = RoutingDecision(list(decision.candidates), decision.reason)
        router.pre_forward(ctx)
        await failover.pre_forward(ctx)
        attempt = Attempt("up", "gpt-4o-mini", status=200, latency_ms=1.0)
        ctx.attempts.append(attempt)
        router.on_attempt(ctx, attempt)
        await failover.on_attempt(ctx, attempt)
        router.post_response(ctx)
        await failover.post_response(ctx)
        end = clock()
        if i >= 2000:  # after a warm-up
            route_only.append((routed - start) * 1e6)
            layer.append((end - start) * 1e6)
    await gateway.close(hooks=True)
    gateway.log_setup.close()
    return statistics.median(route_only), statistics.median(layer)


async def tenant_auth_hooks_us(ttl: float, n: int, tmp: Path, store: str | None = None) -> float:
    """The median wall µs of tenant_auth's own work on one request: `pre_auth` (hash,
    cache or store look-up, the Identity) and `pre_forward` (the model check)."""
    import statistics
    import time

    from interlock.core.context import ChatHead, RequestContext

    model = REQUEST["model"]
    store = store or f"sqlite:///{tmp}/hooks-{ttl}.db"
    toml = BASE.format(model=model) + f'\n[store]\nurl = "{store}"\n'
    toml += TENANT_AUTH.format(ttl=ttl)
    app = create_app(parse_config(tomllib.loads(toml), source="bench", base_dir=str(BENCH)))
    gateway = app.state.gateway
    gateway.log_setup.writer._stream = io.BytesIO()
    await gateway.start()
    [(_, value)] = await _virtual_key(gateway)
    [plugin] = gateway.plugins
    headers = {"authorization": value.decode(), "content-type": "application/json"}
    head = ChatHead(model=model, messages=[])
    samples: list[float] = []
    clock = time.perf_counter
    for i in range(min(n, 2000) + n):
        ctx = RequestContext(
            request_id="r", inbound="openai", endpoint="chat", path="/v1/chat/completions",
            headers=headers, client="127.0.0.1",
        )  # fmt: skip
        ctx.set_body(b"{}", head)
        start = clock()
        await plugin.pre_auth(ctx)
        plugin.pre_forward(ctx)
        if i >= min(n, 2000):
            samples.append(clock() - start)
    await gateway.close(hooks=True)
    gateway.log_setup.close()
    return statistics.median(samples) * 1e6


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
    scope = _scope(body, [])
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
    parser.add_argument(
        "--pg", metavar="URL", help="also time tenant_auth's look-up on this PostgreSQL store"
    )
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
        routed = run(per_request_us(ROUTER, args.n, Path(tmp), AUTO))
        both = run(per_request_us(ROUTER + FAILOVER, args.n, Path(tmp), AUTO))
        route_med, layer_med = run(router_hooks_us(args.n, Path(tmp)))
        cached = run(per_request_us(TENANT_AUTH.format(ttl=60), args.n, Path(tmp)))
        looked_up = run(per_request_us(TENANT_AUTH.format(ttl=0), args.n, Path(tmp)))
        hit_us = run(tenant_auth_hooks_us(60, args.n, Path(tmp)))
        miss_us = run(tenant_auth_hooks_us(0, args.n, Path(tmp)))
        pg_us = run(tenant_auth_hooks_us(0, args.n, Path(tmp), args.pg)) if args.pg else None
    print(f"Interlock in-process, canned upstream, {args.n:,} requests:")
    print(f"  no plugins                  {bare:6.1f} µs CPU per request")
    print(f"  trivial plugin on 4 hooks   {hooks:6.1f} µs CPU per request ({hooks - bare:+.1f} µs)")
    print(
        f"  cost_router (auto, tiers)   {routed:6.1f} µs CPU per request ({routed - bare:+.1f} µs)"
    )
    print(f"  cost_router + failover      {both:6.1f} µs CPU per request ({both - bare:+.1f} µs)")
    print(f"  cost_router route() alone   {route_med:6.1f} µs median per request")
    print(f"  router layer's own hooks    {layer_med:6.1f} µs median per request")
    print(
        f"  tenant_auth, key cached     {cached:6.1f} µs CPU per request ({cached - bare:+.1f} µs)"
    )
    print(
        f"  tenant_auth, store look-up  {looked_up:6.1f} µs CPU per request "
        f"({looked_up - bare:+.1f} µs)"
    )
    print(f"  tenant_auth hooks, cached   {hit_us:6.1f} µs median per request")
    print(f"  tenant_auth hooks, look-up  {miss_us:6.1f} µs median per request (SQLite)")
    if pg_us is not None:
        print(f"  tenant_auth hooks, look-up  {pg_us:6.1f} µs median per request (PostgreSQL)")
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
