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

Then the compliance plugins: `audit` on a SQLite file, durable (each request waits for
its group commit) and not, one request at a time and 64 at once (CPU µs per request
over the run, and the median request's wall-clock µs); and `pii_redaction` on a 2 kB and
a 50 kB prompt that holds a few emails, phone numbers and a card number (median
wall-clock µs per request with and without the plugin: no I/O there, so wall clock is
CPU).
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


async def per_request_us(
    plugins: str, n: int, tmp: Path, request: dict[str, Any] = REQUEST
) -> float:
    return (await measure(plugins, n, tmp, request))[0]


async def measure(
    plugins: str, n: int, tmp: Path, request: dict[str, Any] = REQUEST, concurrency: int = 1
) -> tuple[float, float]:
    """(CPU µs per request over the run, median wall-clock µs of one request)."""
    import statistics
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
            *auth,
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        return None

    walls: list[float] = []

    async def one() -> None:
        began = time.perf_counter()
        await app(dict(scope), receive, send)
        walls.append(time.perf_counter() - began)

    for _ in range(min(n, 2000)):  # warm-up: caches, the default route, allocator
        await app(dict(scope), receive, send)
    walls.clear()
    start = time.process_time()
    for _ in range(n // concurrency):
        if concurrency == 1:
            await one()
        else:
            await asyncio.gather(*(one() for _ in range(concurrency)))
    us = (time.process_time() - start) / len(walls) * 1e6
    await gateway.close(hooks=True)
    gateway.log_setup.close()
    return us, statistics.median(walls) * 1e6


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


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="requests per measurement")
    parser.add_argument(
        "--pg", metavar="URL", help="also time tenant_auth's look-up on this PostgreSQL store"
    )
    parser.add_argument(
        "--policy-only", action="store_true", help="only the policy layer's rows (bench/policy.py)"
    )
    args = parser.parse_args()
    if args.policy_only:
        _policy(args.n)
        return
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
        audit = _audit_rows(run, args.n // 4, Path(tmp))
        pii = _pii_rows(run, args.n, Path(tmp))
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
    for line in audit + pii:
        print(line)
    _policy(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        from bench.plugin_costs import counters_rows

        for line in counters_rows(run, args.n, Path(tmp)):
            print(line, flush=True)


def _policy(n: int) -> None:
    """Each policy plugin's cost, alone and within scenario (d) (bench/plugin_costs.py)."""
    import tempfile

    from bench.plugin_costs import plugin_rows

    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    with tempfile.TemporaryDirectory() as tmp:
        for line in plugin_rows(run, n, Path(tmp)):
            print(line, flush=True)


AUDIT = "\n[plugins.audit]\ndurable = {durable}\n"
PII = "\n[plugins.pii_redaction]\n"


def _audit_rows(run: Any, n: int, tmp: Path) -> list[str]:
    """audit on SQLite: durable or not, one request at a time and 64 at once."""
    rows = []
    for concurrency in (1, 64):
        base_cpu, base_wall = run(measure("", n, tmp, concurrency=concurrency))
        for durable in ("true", "false"):
            (tmp / "bench.db").unlink(missing_ok=True)
            cpu, wall = run(measure(AUDIT.format(durable=durable), n, tmp, concurrency=concurrency))
            label = (
                f"audit, {'durable' if durable == 'true' else 'not durable'}, {concurrency} at once"
            )
            rows.append(
                f"  {label:<34}{cpu:6.1f} µs CPU per request ({cpu - base_cpu:+.1f} µs), "
                f"median {wall:7.1f} µs wall ({wall - base_wall:+.1f} µs)"
            )
    return rows


def _pii_rows(run: Any, n: int, tmp: Path) -> list[str]:
    """pii_redaction on a 2 kB and a 50 kB prompt (a few values to redact in each)."""
    rows = []
    for size, count in ((2_000, n // 4), (50_000, max(200, n // 50))):
        request = {**REQUEST, "messages": [{"role": "user", "content": prompt(size)}]}
        _, bare = run(measure("", count, tmp, request=request))
        _, with_pii = run(measure(PII, count, tmp, request=request))
        label = f"pii_redaction, {size // 1000} kB prompt"
        rows.append(
            f"  {label:<34}median {with_pii:7.1f} µs per request ({with_pii - bare:+.1f} µs "
            f"over the same prompt without it)"
        )
    return rows


def prompt(size: int) -> str:
    """Support-ticket prose of `size` characters with an email, a phone number and a card
    number every ~1 kB, as a redaction plugin would see it."""
    text = (
        "The customer wrote again about the delayed refund for order 100238 placed on "
        "2026-11-02; she says the parcel never arrived and the tracking page shows no "
        "update since Tuesday. Please check with the carrier, confirm the address on file "
        "and let her know within two working days, as promised in our last reply. "
    )
    pii = "Reach her at maria.g@example.com or +1 415-555-0199; card 4111 1111 1111 1111. "
    out = ""
    while len(out) < size:
        out += text + text + text + pii
    return out[:size]


if __name__ == "__main__":
    main()
