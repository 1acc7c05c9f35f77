"""Run every scenario and print the table: `bench/run` or `python -m bench`.

The upstream (nginx answering a fixed chat.completion and a fixed 21-event stream), wrk
and the small asyncio clients run on one core, the server under test on the other.
Each throughput figure is wrk after a warm-up; CPU per request is the server's process
tree's utime + stime over the measured run divided by the requests wrk counted.

A scenario is one entry in SCENARIOS; a scenario for a policy plugin is an Interlock
entry with its plugins.toml text in `plugins`, or the names of bench/policy.py's tables
in `policy` (then a tenant and its virtual key are made with the CLI before the server
starts, and every client sends that key; bench/stateful.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import policy, stateful
from bench.payloads import COMPLETION, REQUEST, encoded, sse_events
from bench.procs import Proc, cores, free_port, pinned
from bench.report import machine, markdown

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
TRIVIAL = """
[plugins.trivial]
path = "{bench}/plugins/trivial.py"
"""


@dataclass
class Scenario:
    key: str
    label: str
    kind: str  # upstream | nginx | reference | interlock | litellm
    server: str = "hypercorn"  # hypercorn | uvicorn (reference); default | fast (interlock)
    client: str = ""
    plugins: str = ""  # extra plugins.toml text (Interlock only)
    workers: int = 1
    stream: bool = False  # also measure (f) streaming through it
    latency: bool = False  # also measure added latency at a low, paced rate
    baseline: str = ""  # the reference scenario this one is a ratio of
    policy: tuple[str, ...] = ()  # bench/policy.py tables (Interlock only); a virtual key
    request: str = "chat"  # chat | auto (the router chooses) | pii (a 2 kB prompt with PII)
    store: str = "sqlite"  # sqlite | postgres
    counters: str = "memory"  # memory | redis


def chat_body(sc: Scenario) -> dict:
    if sc.request == "auto":
        return policy.AUTO
    if sc.request == "pii":
        return policy.pii_request()
    return REQUEST


def stream_body(sc: Scenario) -> dict:
    return {**chat_body(sc), "stream": True, "stream_options": {"include_usage": True}}


# The default profile's client, decided by measurement (see bench/README.md).
DEFAULT_CLIENT = "httpx-aiohttp"

SCENARIOS: list[Scenario] = [
    Scenario("a", "(a) upstream direct (nginx)", "upstream", stream=True, latency=True),
    Scenario("b", "(b) nginx reverse proxy", "nginx", stream=True, latency=True),
    Scenario("ref-hc-httpx", "40-line proxy: hypercorn + httpx", "reference", "hypercorn", "httpx"),
    Scenario(
        "ref-hc-hxa",
        "40-line proxy: hypercorn + httpx-aiohttp",
        "reference",
        "hypercorn",
        "httpx-aiohttp",
        stream=True,
        latency=True,
    ),
    Scenario(
        "ref-uv-aiohttp",
        "40-line proxy: uvicorn + aiohttp",
        "reference",
        "uvicorn",
        "aiohttp",
        stream=True,
        latency=True,
    ),
    Scenario(
        "c-httpx",
        "Interlock default server + plain httpx",
        "interlock",
        "default",
        "httpx",
        baseline="ref-hc-httpx",
    ),
    Scenario(
        "c-default",
        "(c) Interlock default (hypercorn + httpx-aiohttp)",
        "interlock",
        "default",
        DEFAULT_CLIENT,
        stream=True,
        latency=True,
        baseline="ref-hc-hxa",
    ),
    Scenario(
        "c'-default",
        "(c') default + trivial plugin on 4 hooks",
        "interlock",
        "default",
        DEFAULT_CLIENT,
        plugins=TRIVIAL,
        latency=True,
        baseline="ref-hc-hxa",
    ),
    Scenario(
        "c-fast",
        "(c) Interlock --fast (uvicorn + aiohttp)",
        "interlock",
        "fast",
        "",
        stream=True,
        latency=True,
        baseline="ref-uv-aiohttp",
    ),
    Scenario(
        "c'-fast",
        "(c') --fast + trivial plugin on 4 hooks",
        "interlock",
        "fast",
        "",
        plugins=TRIVIAL,
        latency=True,
        baseline="ref-uv-aiohttp",
    ),
    Scenario(
        "c-default-2w",
        "(c) default, --workers 2 (both cores, unpinned)",
        "interlock",
        "default",
        DEFAULT_CLIENT,
        workers=2,
    ),
    Scenario(
        "c-fast-2w",
        "(c) --fast, --workers 2 (both cores, unpinned)",
        "interlock",
        "fast",
        "",
        workers=2,
    ),
]


def _policy_scenarios() -> list[Scenario]:
    """(d), (d-redis) and (e): the policy layer on both profiles (bench/policy.py)."""
    out: list[Scenario] = []
    clients = {"default": DEFAULT_CLIENT, "fast": ""}
    bases = {"default": "ref-hc-hxa", "fast": "ref-uv-aiohttp"}
    profile_name = {"default": "default", "fast": "--fast"}
    for profile in ("default", "fast"):
        client, base, name = clients[profile], bases[profile], profile_name[profile]
        out.append(
            Scenario(
                f"d-{profile}",
                f"(d) policy layer, {name} (SQLite, memory counters)",
                "interlock",
                profile,
                client,
                policy=policy.D,
                request="auto",
                stream=True,
                latency=True,
                baseline=base,
            )
        )
        out.append(
            Scenario(
                f"d-redis-{profile}",
                f"(d-redis) policy layer, {name} (PostgreSQL, Redis)",
                "interlock",
                profile,
                client,
                policy=policy.D,
                request="auto",
                latency=True,
                baseline=base,
                store="postgres",
                counters="redis",
            )
        )
        out.append(
            Scenario(
                f"d-redis-{profile}-2w",
                f"(d-redis) {name}, --workers 2 (both cores, unpinned)",
                "interlock",
                profile,
                client,
                workers=2,
                policy=policy.D,
                request="auto",
                store="postgres",
                counters="redis",
            )
        )
        out.append(
            Scenario(
                f"e-{profile}",
                f"(e) (d) + pii_redaction, 2 kB prompt with PII, {name}",
                "interlock",
                profile,
                client,
                policy=policy.E,
                request="pii",
                latency=True,
            )
        )
    return out


SCENARIOS += _policy_scenarios()
# The scenarios whose server takes 1,000 concurrent streams (and, for (d), a burst).
STREAMED = ("c-default", "c-fast", "d-default", "d-fast")
BURST = ("d-fast",)
LITELLM = Scenario("g", "(g) LiteLLM proxy, 1 worker, no database", "litellm", latency=True)


@dataclass
class Env:
    tmp: Path
    server_core: str | None
    load_core: str | None
    json_port: int
    sse_port: int
    args: argparse.Namespace
    results: dict[str, dict] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    key: str = "sk-bench-client"  # what clients send: a virtual key for policy scenarios
    redis: stateful.Redis | None = None  # started on first use
    pg: stateful.Postgres | None = None  # created on first use
    starts: int = 0  # servers started (each policy start gets a tenant of its own)

    def counters_url(self) -> str:
        if self.redis is None:
            self.redis = stateful.Redis(self.tmp, self.load_core)
        return self.redis.url

    def postgres_url(self) -> str:
        if self.pg is None:
            self.pg = stateful.Postgres(self.args.pg)
        return self.pg.url


# -- tools ----------------------------------------------------------------------------------
def check_tools() -> list[str]:
    missing = [t for t in ("nginx", "wrk", "taskset") if shutil.which(t) is None]
    if "nginx" in missing and Path("/usr/sbin/nginx").exists():
        missing.remove("nginx")
    return missing


def nginx_bin() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _nginx_string(data: bytes) -> str:
    text = data.decode()
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def nginx_conf(tmp: Path, name: str, servers: str) -> Path:
    conf = tmp / f"{name}.conf"
    work = tmp / name
    work.mkdir(exist_ok=True)
    temps = "\n".join(
        f"  {k}_temp_path {work}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
{temps}
{servers}
}}
""")
    return conf


def start_upstream(env: Env) -> None:
    completion = _nginx_string(encoded(COMPLETION))
    # The stream is longer than an nginx string may be: a static file, and the usual
    # `error_page 405` turn so a POST gets it.
    static = env.tmp / "static" / "v1" / "chat"
    static.mkdir(parents=True)
    (static / "completions").write_bytes(b"".join(sse_events()))
    servers = f"""
  server {{ listen 127.0.0.1:{env.json_port} backlog=4096;
    location / {{ default_type application/json; return 200 '{completion}'; }} }}
  server {{ listen 127.0.0.1:{env.sse_port} backlog=4096; root {env.tmp / "static"};
    error_page 405 =200 $uri;
    location / {{ default_type text/event-stream; }} }}
"""
    conf = nginx_conf(env.tmp, "upstream", servers)
    proc = Proc(
        "upstream nginx",
        pinned([nginx_bin(), "-c", str(conf)], env.load_core),
        env.tmp / "upstream.log",
    )
    env.procs.append(proc)
    proc.wait_port(env.json_port)
    proc.wait_port(env.sse_port)


# -- servers under test -------------------------------------------------------------------
def sqlite_path(env: Env, sc: Scenario) -> Path:
    return env.tmp / f"interlock-{sc.key}.db"


def interlock_toml(env: Env, sc: Scenario, upstream_port: int) -> Path:
    client = f'client = "{sc.client}"\n' if sc.client else ""
    profile = f'profile = "{sc.server}"\n'
    store = env.postgres_url() if sc.store == "postgres" else f"sqlite:///{sqlite_path(env, sc)}"
    counters = env.counters_url() if sc.counters == "redis" else "memory://"
    text = f"""
[server]
{profile}{client}workers = {sc.workers}

[store]
url = "{store}"

[counters]
url = "{counters}"

[[providers]]
name = "up"
kind = "openai"
base_url = "http://127.0.0.1:{upstream_port}/v1"
api_key = "sk-bench-upstream"
models = {list(policy.MODELS)!r}
{sc.plugins.format(bench=ROOT / "bench")}{policy.tables(sc.policy) if sc.policy else ""}
"""
    path = env.tmp / f"plugins-{sc.key}-{upstream_port}.toml"
    path.write_text(text)
    return path


def start_server(env: Env, sc: Scenario, upstream_port: int) -> tuple[Proc | None, int]:
    """Start the server of a scenario; returns (process, port). The upstream has none."""
    env.key = "sk-bench-client"  # what every server but a policy scenario's accepts
    if sc.kind == "upstream":
        return None, upstream_port
    port = free_port()
    core = env.server_core if sc.workers == 1 else None
    log = env.tmp / f"{sc.key}-{upstream_port}.log"
    cpython = os.environ.copy()
    if sc.kind == "nginx":
        servers = f"""
  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{ listen 127.0.0.1:{port} backlog=4096;
    location / {{ proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; proxy_buffering off; }} }}
"""
        conf = nginx_conf(env.tmp, f"proxy-{upstream_port}", servers)
        proc = Proc(sc.key, pinned([nginx_bin(), "-c", str(conf)], core), log)
    elif sc.kind == "reference":
        cpython.update(
            BENCH_UPSTREAM=f"http://127.0.0.1:{upstream_port}/v1", BENCH_CLIENT=sc.client
        )
        if sc.server == "uvicorn":
            cmd = [
                PY,
                "-m",
                "uvicorn",
                "bench.reference_proxy:app",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
                "--backlog",
                "4096",
            ]
        else:
            cmd = [
                PY,
                "-m",
                "hypercorn",
                "bench.reference_proxy:app",
                "--bind",
                f"127.0.0.1:{port}",
                "-k",
                "uvloop",
                "--backlog",
                "4096",
            ]
        proc = Proc(sc.key, pinned(cmd, core), log, env=cpython, cwd=str(ROOT))
    elif sc.kind == "interlock":
        toml = interlock_toml(env, sc, upstream_port)
        if "tenant_auth" in sc.policy:
            env.starts += 1
            env.key = stateful.virtual_key(
                toml, f"bench{env.starts}", policy.RPM, policy.TPM, policy.BUDGET_USD, env.tmp
            )
        cmd = [PY, "-m", "interlock.core.cli", "serve", "--config", str(toml), "--port", str(port)]
        proc = Proc(sc.key, pinned(cmd, core), log, env=cpython, cwd=str(env.tmp))
    elif sc.kind == "litellm":
        proc = start_litellm(env, port, upstream_port, core, log)
    else:
        raise ValueError(sc.kind)
    env.procs.append(proc)
    proc.wait_port(port, timeout=120 if sc.kind == "litellm" else 30)
    return proc, port


def start_litellm(env: Env, port: int, upstream_port: int, core: str | None, log: Path) -> Proc:
    venv = Path(env.args.litellm_venv)
    if not (venv / "bin" / "litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True, timeout=900
        )
    conf = env.tmp / f"litellm-{upstream_port}.yaml"
    conf.write_text(f"""model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: sk-bench-upstream
litellm_settings:
  telemetry: false
""")
    cmd = [
        str(venv / "bin" / "litellm"),
        "--config",
        str(conf),
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    # LiteLLM refuses to start without a master key; the one wrk and the clients send.
    litellm_env = {**os.environ, "LITELLM_MASTER_KEY": "sk-bench-client"}
    return Proc("litellm", pinned(cmd, core), log, env=litellm_env, cwd=str(env.tmp))


# -- measurements -------------------------------------------------------------------------
_WRK_LAT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(env: Env, url: str, body: bytes, seconds: float, connections: int) -> dict:
    script = env.tmp / f"post-{len(body)}-{env.key[-8:]}.lua"
    escaped = body.decode().replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {env.key}"\n'
    )
    cmd = pinned(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        env.load_core,
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    lat = {p: float(v) * _UNIT[u] for p, v, u in _WRK_LAT.findall(out)}
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": lat.get("50"),
        "p99_ms": lat.get("99"),
        "errors": errors,
    }


def throughput(env: Env, proc: Proc | None, port: int, body: bytes, redis: bool = False) -> dict:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    wrk(env, url, body, env.args.warmup, env.args.connections)
    before = proc.cpu_seconds() if proc else 0.0
    commands = env.redis.commands() if redis and env.redis else None
    result = wrk(env, url, body, env.args.duration, env.args.connections)
    if proc:
        used = proc.cpu_seconds() - before
        result["cpu_us_per_req"] = used / max(1, result["requests"]) * 1e6
        result["rss_mb"] = proc.rss_mb()
    if commands is not None and env.redis is not None:
        # Requests wrk counted; the last settles may land just after: a slight overcount.
        result["redis"] = stateful.per_request(commands, env.redis.commands(), result["requests"])
    return result


def loadgen(env: Env, *args: str, body: dict | None = None) -> dict:
    extra = ["--key", env.key]
    if body is not None and body is not REQUEST:
        path = env.tmp / f"body-{abs(hash(encoded(body)))}.json"
        path.write_bytes(encoded(body))
        extra += ["--body", str(path)]
    cmd = pinned([PY, "-m", "bench.loadgen", *args, *extra], env.load_core)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT), check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def paced(env: Env, port: int, stream: bool, body: dict = REQUEST) -> dict:
    args = [
        "latency",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        "--rate",
        str(env.args.rate),
        "--seconds",
        str(env.args.latency_seconds),
    ]
    return loadgen(env, *args, *(["--stream"] if stream else []), body=body)


def run_scenario(env: Env, sc: Scenario) -> dict:
    print(f"  {sc.label} ...", flush=True)
    result: dict = {"label": sc.label}
    proc, port = start_server(env, sc, env.json_port)
    try:
        if proc:
            result["idle_rss_mb"] = proc.rss_mb()
        redis = sc.counters == "redis"
        result["chat"] = throughput(env, proc, port, encoded(chat_body(sc)), redis)
        if sc.latency:
            result["latency"] = paced(env, port, stream=False, body=chat_body(sc))
    finally:
        if proc:
            proc.stop()
    if sc.stream:
        proc, port = start_server(env, sc, env.sse_port)
        try:
            result["stream"] = throughput(env, proc, port, encoded(stream_body(sc)))
            result["stream_latency"] = paced(env, port, stream=True, body=chat_body(sc))
        finally:
            if proc:
                proc.stop()
    return result


class _Peak:
    """The highest RSS of a process, sampled every 50 ms on a thread until stopped."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.mb = proc.rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.mb = max(self.mb, self.proc.rss_mb())

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.mb


def concurrent_streams(env: Env, sc: Scenario) -> dict:
    """(f') n concurrent streams through Interlock against a slow-streaming upstream; with
    the policy layer, then also: every stream's audit record and ledger row are in the
    store, and the budget counters hold exactly the ledger's spend (all settled)."""
    port = free_port()
    cmd = [
        PY,
        "-m",
        "bench.slow_upstream",
        "--port",
        str(port),
        "--delay-ms",
        str(env.args.slow_delay_ms),
    ]
    upstream = Proc(
        "slow upstream", pinned(cmd, env.load_core), env.tmp / "slow.log", cwd=str(ROOT)
    )
    env.procs.append(upstream)
    upstream.wait_port(port)
    db = sqlite_path(env, sc)
    db.unlink(missing_ok=True)
    proc, gw = start_server(env, sc, port)
    assert proc is not None
    probes = "budget" in sc.policy and sc.store == "sqlite"
    try:
        before = proc.rss_mb()
        if probes:
            _, remaining_before = stateful.budget_probe(gw, env.key, encoded(chat_body(sc)))
        peak = _Peak(proc)
        url = f"http://127.0.0.1:{gw}/v1/chat/completions"
        result = loadgen(env, "streams", url, "--n", str(env.args.streams), body=chat_body(sc))
        result["rss_peak_mb"] = peak.stop()
        if probes:
            last, remaining_after = stateful.budget_probe(gw, env.key, encoded(chat_body(sc)))
        time.sleep(1.0)  # let the server release connections before reading RSS "after"
        result.update(rss_before_mb=before, rss_after_mb=proc.rss_mb())
    finally:
        proc.stop()  # a graceful stop: the writers commit what is queued
        upstream.stop()
    if probes:
        held = stateful.records(db)
        # The probes' reservations cancel out: the counters moved by the settled spend of
        # the first probe and the streams, which is the ledger less the last probe.
        spent = held["ledger_usd"] - stateful.ledger_cost(db, last)
        result["store"] = held
        result["unsettled_usd"] = (remaining_before - remaining_after) - spent
    return result


def burst(env: Env, sc: Scenario, n: int) -> dict:
    """n requests at once through the policy layer: errors, peak RSS, how many audit
    records are committed when the last answer arrives, and how long the ledger's
    group commit takes to hold every row."""
    db = sqlite_path(env, sc)
    db.unlink(missing_ok=True)
    proc, port = start_server(env, sc, env.json_port)
    assert proc is not None
    try:
        before = proc.rss_mb()
        peak = _Peak(proc)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        result = loadgen(
            env, "burst", url, "--n", str(n), "--connections", "1000", body=chat_body(sc)
        )
        result["rss_peak_mb"] = peak.stop()
        result["at_last_answer"] = stateful.records(db)
        result["store"], result["drained_s"] = stateful.wait_for(db, n, n)
        result["rss_before_mb"] = before
        result["rss_after_mb"] = proc.rss_mb()
    finally:
        proc.stop()
    return result


def soak(env: Env, sc: Scenario, seconds: float) -> dict:
    """RSS every 30 s while wrk keeps the gateway busy for `seconds`."""
    proc, port = start_server(env, sc, env.json_port)
    assert proc is not None
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    samples = [proc.rss_mb()]
    requests = errors = 0
    try:
        left = seconds
        while left > 0:
            step = min(30.0, left)
            run = wrk(env, url, encoded(chat_body(sc)), step, env.args.connections)
            requests += run["requests"]
            errors += run["errors"]
            samples.append(proc.rss_mb())
            left -= step
    finally:
        proc.stop()
    return {
        "seconds": seconds,
        "requests": requests,
        "errors": errors,
        "rss_mb": [round(s, 1) for s in samples],
        "growth_mb": samples[-1] - samples[1],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--duration", type=float, default=8, help="seconds of each measured wrk run")
    p.add_argument("--warmup", type=float, default=2, help="seconds of wrk before measuring")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--rate", type=float, default=200, help="paced latency: requests/s")
    p.add_argument("--latency-seconds", type=float, default=4)
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams (0: skip)")
    p.add_argument("--slow-delay-ms", type=float, default=50)
    p.add_argument("--only", help="comma-separated scenario keys (a is always run)")
    p.add_argument("--litellm", action="store_true", help="(g): LiteLLM in a throwaway venv")
    p.add_argument("--litellm-venv", default="/tmp/interlock-bench-litellm")
    p.add_argument("--soak", type=float, default=0, help="seconds of soak on --fast (600: 10 min)")
    p.add_argument("--soak-scenario", default="d-fast", help="the scenario the soak runs")
    p.add_argument("--burst", type=int, default=5000, help="requests at once through (d) (0: skip)")
    p.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (admin URL) where (d-redis) gets a database of its own",
    )
    p.add_argument("--out", default=str(RESULTS), help="where latest.json / latest.md go")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = check_tools()
    if missing:
        print(
            f"bench: missing {', '.join(missing)}; on Debian/Ubuntu: "
            "sudo apt-get install nginx-light wrk util-linux",
            file=sys.stderr,
        )
        return 2
    server_core, load_core = cores()
    tmp = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
    tmp.chmod(0o755)  # nginx workers (user nobody) read the static stream from here
    env = Env(tmp, server_core, load_core, free_port(), free_port(), args)
    scenarios = list(SCENARIOS)
    if args.only:
        keep = {"a", *args.only.split(",")}
        scenarios = [s for s in scenarios if s.key in keep]
    if args.litellm:
        scenarios.append(LITELLM)
    notes: list[str] = []
    data: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "server_core": server_core,
        "load_core": load_core,
        "connections": args.connections,
        "duration": args.duration,
        "rate": args.rate,
        "slow_delay_ms": args.slow_delay_ms,
        "default_client": DEFAULT_CLIENT,
    }
    try:
        start_upstream(env)
        results: dict[str, dict] = {}
        for sc in scenarios:
            try:
                r = run_scenario(env, sc)
            except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
                if sc.kind != "litellm":
                    raise
                reason = " ".join(str(exc).split())[:300]
                notes.append(f"(g) LiteLLM skipped: {reason}")
                print(f"  skipped: {exc}", file=sys.stderr)
                continue
            r["baseline"] = sc.baseline
            results[sc.key] = r
        data["scenarios"] = results
        if args.streams:
            data["concurrent_streams"] = {}
            for sc in scenarios:
                if sc.key in STREAMED:
                    print(f"  {args.streams} concurrent streams through {sc.key} ...", flush=True)
                    data["concurrent_streams"][sc.key] = concurrent_streams(env, sc)
        if args.burst:
            data["burst"] = {}
            for sc in scenarios:
                if sc.key in BURST:
                    print(f"  a burst of {args.burst} requests through {sc.key} ...", flush=True)
                    data["burst"][sc.key] = burst(env, sc, args.burst)
        if args.soak:
            which = next(s for s in SCENARIOS if s.key == args.soak_scenario)
            print(f"  soak {args.soak:.0f} s through {which.key} ...", flush=True)
            data["soak"] = soak(env, which, args.soak)
            data["soak"]["scenario"] = which.key
    finally:
        for proc in reversed(env.procs):
            proc.stop()
        if env.redis is not None:
            env.redis.stop()
        if env.pg is not None:
            env.pg.drop()
    data["notes"] = notes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    table = markdown(data)
    (out / "latest.md").write_text(table)
    print()
    print(table)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0
