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
        "| server under test | RPS | p50 ms | p99 ms | CPU µs/req | RSS MB (idle → loaded) | vs 40-line proxy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res.values():
        c = r["chat"]
        base = res.get(r.get("baseline") or "", {}).get("chat", {})
        ratio = (
            f"{c['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}x CPU"
            if base.get("cpu_us_per_req") and c.get("cpu_us_per_req")
            else ""
        )
        rss = f"{_f(r.get('idle_rss_mb'))} → {_f(c.get('rss_mb'))}" if "rss_mb" in c else "-"
        err = f" ({c['errors']} errors)" if c.get("errors") else ""
        lines.append(
            f"| {r['label']}{err} | {_f(c['rps'])} | {_f(c['p50_ms'], '{:.2f}')} | "
            f"{_f(c['p99_ms'], '{:.2f}')} | {_f(c.get('cpu_us_per_req'))} | {rss} | {ratio} |"
        )
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
    if data.get("soak"):
        s = data["soak"]
        lines += [
            "",
            f"Soak: {s['seconds']:.0f} s under load, RSS {s['rss_mb']} MB "
            f"(growth after warm-up {s['growth_mb']:+.1f} MB).",
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
