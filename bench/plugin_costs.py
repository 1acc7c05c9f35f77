"""What each policy plugin costs per request, in process: the rows `python -m bench.inprocess`
prints for scenario (d) (bench/policy.py).

Every figure is CPU µs per request over a run of the ASGI app in one loop against a
canned upstream (bench/inprocess.py: `measure`), so the network and the servers are
out and what is left is the gateway's own work, background tasks included (the audit
writer's and the ledger's commits run in the same process; SQLite's in its thread).

- "alone": the plugin on the bare gateway, minus the bare gateway;
- "in (d)": (d) minus (d) without the plugin: what the plugin adds where it really runs
  (rate_limit's checks ride in budget's counters call there, for example);
- the whole (d) set minus the bare gateway, one request at a time and 64 at once (the
  audit writer's group commit takes one transaction for many records only when
  requests overlap, as they do in a loaded server).

pii_redaction is measured on (e)'s 2 kB prompt, against the bare gateway on the same
prompt. audit runs as (d) runs it (records off the request path, bench/policy.py); one
row shows (d) with audit's default, `durable = true`, where every response waits for its
record's commit.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.inprocess import measure
from bench.payloads import REQUEST
from bench.policy import AUTO, DURABLE, MODELS, OFF_PATH, D, pii_request, tables

# Routing to a fallback model needs the upstream to list it (the canned client answers
# for the provider "up", which measure() makes with one model).
SECOND = f"""
[[providers]]
name = "up2"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-bench"
models = ["{MODELS[1]}"]
"""


def _request(plugins: tuple[str, ...]) -> dict[str, Any]:
    return AUTO if "cost_router" in plugins else REQUEST


def plugin_rows(run: Callable[[Any], Any], n: int, tmp: Path, repeats: int = 3) -> list[str]:
    """The per-plugin table, as printed lines; each figure the median of `repeats` runs
    (a shared 2-core VM moves a single run by 10-20 µs)."""

    def cpu(
        plugins: tuple[str, ...],
        *,
        concurrency: int = 1,
        request: Any = None,
        audit: str = OFF_PATH,
    ) -> float:
        text = SECOND + tables(plugins, audit=audit) if plugins else ""
        body = request if request is not None else _request(plugins)
        runs = [
            float(run(measure(text, n, tmp, body, concurrency=concurrency))[0])
            for _ in range(repeats)
        ]
        return statistics.median(runs)

    bare = cpu(())
    whole = cpu(D)
    rows = [
        "",
        f"Policy layer, scenario (d) ({', '.join(D)}; SQLite, memory counters), "
        f"{n:,} requests, CPU µs per request (median of {repeats} runs):",
        f"  bare gateway                {bare:6.1f}",
        f"  (d) all together            {whole:6.1f}  ({whole - bare:+.1f} µs over bare)",
    ]
    bare64 = cpu((), concurrency=64)
    whole64 = cpu(D, concurrency=64)
    rows.append(
        f"  (d), 64 at once             {whole64:6.1f}  ({whole64 - bare64:+.1f} µs over bare "
        f"64 at once, {bare64:.1f})"
    )
    durable = cpu(D, audit=DURABLE)
    durable64 = cpu(D, concurrency=64, audit=DURABLE)
    rows.append(
        f"  (d), audit durable          {durable:6.1f}  ({durable - whole:+.1f} µs over (d)); "
        f"64 at once {durable64:.1f} ({durable64 - whole64:+.1f})"
    )
    rows.append(f"  {'plugin':<26}{'alone':>8}{'in (d)':>10}")
    for name in D:
        alone = cpu((name,)) - bare
        without = tuple(p for p in D if p != name)
        inside = whole - cpu(without)
        rows.append(f"  {name:<26}{alone:+8.1f}{inside:+10.1f}")
    prompt = pii_request()
    plain = {**REQUEST, "messages": prompt["messages"]}
    bare_pii = cpu((), request=plain)
    pii = cpu(("pii_redaction",), request=plain) - bare_pii
    rows.append(f"  {'pii_redaction (2 kB prompt)':<26}{pii:+8.1f}")
    return rows


# -- rate_limit and budget on each counters backend -----------------------------------------
# Every limit high enough never to refuse; no auth plugin, so each request counts against
# the defaults of the anonymous tenant and runs the whole check and settle path.
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


def counters_rows(run: Callable[[Any], Any], n: int, tmp: Path) -> list[str]:
    """rate_limit, budget and both on memory:// and (when it answers) the Redis on
    127.0.0.1:6379: CPU and median wall µs per request, and with 64 in flight the Redis
    script calls per request (INFO commandstats, so other clients of that Redis count
    too: a shared server inflates it)."""
    backends = ["memory://"] + ([REDIS] if _redis_answers() else [])
    rows = ["", "rate_limit and budget per counters backend (CPU µs; median wall µs):"]
    plugins = [("rate_limit", RATE_LIMIT), ("budget", BUDGET), ("both", RATE_LIMIT + BUDGET)]
    for url in backends:
        counters = f'\n[counters]\nurl = "{url}"\n'
        label = url.split(":")[0]
        bare_cpu, bare_wall = run(measure(counters, n, tmp))
        rows.append(f"  none ({label}){'':<14}{bare_cpu:6.1f} CPU, {bare_wall:6.1f} wall")
        for name, text in plugins:
            cpu, wall = run(measure(counters + text, n, tmp))
            rows.append(
                f"  {name + f' ({label})':<26}{cpu:6.1f} CPU ({cpu - bare_cpu:+.1f}), "
                f"{wall:6.1f} wall ({wall - bare_wall:+.1f})"
            )
        if url == REDIS:
            before = _script_calls()
            cpu, _ = run(measure(counters + RATE_LIMIT + BUDGET, n, tmp, concurrency=64))
            per = (_script_calls() - before) / (n // 64 * 64 + min(n, 2000))
            rows.append(
                f"  both (redis), 64 in flight  {cpu:6.1f} CPU; {per:.2f} Redis script calls "
                "per request"
            )
            run(_drop_bench_keys())
    return rows


def _redis_answers() -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", 6379)) == 0


def _script_calls() -> int:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def _drop_bench_keys() -> None:
    from redis.asyncio import Redis

    raw = Redis.from_url(REDIS)
    keys = [k async for k in raw.scan_iter(match=f"*{BENCH_TENANT}*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()
