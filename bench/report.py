"""The report of a bench run: the markdown tables of `latest.md`, and the machine line."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _f(v: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def markdown(data: dict) -> str:
    res = data["scenarios"]
    lines = [
        f"Measured {data['date']} on {data['machine']}; server on core {data['server_core']}, "
        f"load and upstream on core {data['load_core']}; wrk -t2 -c{data['connections']} "
        f"-d{data['duration']}s, non-streamed chat.",
        "",
        "| server under test | RPS | p50 ms | p99 ms | CPU µs/req | RSS MB (idle → loaded) | vs 40-line proxy | RPS vs LiteLLM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    litellm = res.get("g", {}).get("chat", {}).get("rps")
    for key, r in res.items():
        c = r["chat"]
        base = res.get(r.get("baseline") or "", {}).get("chat", {})
        ratio = (
            f"{c['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}x CPU"
            if base.get("cpu_us_per_req") and c.get("cpu_us_per_req")
            else ""
        )
        rss = f"{_f(r.get('idle_rss_mb'))} → {_f(c.get('rss_mb'))}" if "rss_mb" in c else "-"
        err = f" ({c['errors']} errors)" if c.get("errors") else ""
        versus = f"{c['rps'] / litellm:.1f}x" if litellm and key not in ("a", "b", "g") else ""
        lines.append(
            f"| {r['label']}{err} | {_f(c['rps'])} | {_f(c['p50_ms'], '{:.2f}')} | "
            f"{_f(c['p99_ms'], '{:.2f}')} | {_f(c.get('cpu_us_per_req'))} | {rss} | {ratio} "
            f"| {versus} |"
        )
    redis = [(r["label"], r["chat"]["redis"]) for r in res.values() if r["chat"].get("redis")]
    if redis:
        lines += [
            "",
            "Redis with the policy layer (a private redis-server; round trips are the "
            "socket reads it served, commands include what its Lua scripts ran):",
            "",
            "| server under test | round trips / request | commands / request |",
            "|---|---:|---|",
        ]
        for label, rd in redis:
            by = ", ".join(f"{k} {v:g}" for k, v in rd["by_command"].items())
            lines.append(f"| {label} | {rd['round_trips_per_request']:.2f} | {by} |")
    a = res.get("a", {})
    lines += [
        "",
        "Added latency at a low rate (one connection, "
        f"{data['rate']:.0f} req/s paced), minus (a) the upstream direct:",
        "",
        "| server under test | p50 ms | p99 ms | added p50 ms | added p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, r in res.items():
        lat = r.get("latency")
        if not lat or key == "a":
            continue
        if not lat.get("requests"):
            lines.append(f"| {r['label']} ({lat['errors']} errors, no answer) | - | - | - | - |")
            continue
        base = a.get("latency", {})
        lines.append(
            f"| {r['label']} | {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | "
            f"{lat['p50_ms'] - base.get('p50_ms', 0):.3f} | {lat['p99_ms'] - base.get('p99_ms', 0):.3f} |"
        )
    lines += [
        "",
        "Streaming (21 SSE events per response): throughput with wrk, and time to "
        "first byte / total at a low rate, minus (a):",
        "",
        "| server under test | streams/s | CPU µs/stream | TTFB p50 ms | added TTFB p50 ms | total p50 ms | added total p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for _key, r in res.items():
        s, sl = r.get("stream"), r.get("stream_latency")
        if not s:
            continue
        base = a.get("stream_latency", {})
        lines.append(
            f"| {r['label']} | {_f(s['rps'])} | {_f(s.get('cpu_us_per_req'))} | "
            f"{sl['ttfb_p50_ms']:.3f} | {sl['ttfb_p50_ms'] - base.get('ttfb_p50_ms', 0):.3f} | "
            f"{sl['p50_ms']:.3f} | {sl['p50_ms'] - base.get('p50_ms', 0):.3f} |"
        )
    for key, cs in data.get("concurrent_streams", {}).items():
        lines += [
            "",
            f"{cs['streams']:,} concurrent streams through {key} (slow upstream, "
            f"{data['slow_delay_ms']:.0f} ms between events): {cs['errors']} errors, "
            f"{cs['events_lost']} events lost, stream p50 {cs['stream_p50_ms']:.0f} ms / "
            f"p99 {cs['stream_p99_ms']:.0f} ms; RSS {cs['rss_before_mb']:.0f} MB before, "
            f"{cs['rss_peak_mb']:.0f} MB peak, {cs['rss_after_mb']:.0f} MB after.",
        ]
        held = cs.get("store")
        if held:
            lines[-1] += (
                f" Afterwards (server stopped): {held['audit_streamed']:,} streamed audit "
                f"records of {held['audit']:,}, {held['ledger']:,} ledger rows "
                f"({held['ledger_estimated']} with estimated usage), budget counters minus "
                f"ledger spend {cs['unsettled_usd']:+.7f} USD (0 when every reservation "
                "was settled; the header is rounded to 1e-6)."
            )
    for key, b in data.get("burst", {}).items():
        now, held = b["at_last_answer"], b["store"]
        lines += [
            "",
            f"A burst of {b['requests']:,} requests at once through {key} (1,000 "
            f"connections): {b['errors']} errors in {b['wall_s']:.1f} s, request p50 "
            f"{b['p50_ms']:.0f} ms / p99 {b['p99_ms']:.0f} ms; RSS {b['rss_before_mb']:.0f} MB "
            f"before, {b['rss_peak_mb']:.0f} MB peak. When the last answer arrived the store "
            f"held {now['audit']:,} audit records and {now['ledger']:,} ledger rows; "
            f"{held['audit']:,} and {held['ledger']:,} {b['drained_s']:.2f} s later.",
        ]
    if data.get("soak"):
        s = data["soak"]
        lines += [
            "",
            f"Soak through {s.get('scenario', 'c-fast')}: {s['seconds']:.0f} s under load, "
            f"{s.get('requests', 0):,} requests, {s.get('errors', 0)} errors; RSS every 30 s "
            f"{s['rss_mb']} MB (growth after the first 30 s {s['growth_mb']:+.1f} MB).",
        ]
    for note in data.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )
