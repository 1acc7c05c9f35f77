"""Running the gateway under a server until it is told to stop, and stopping gracefully.

Two server profiles: hypercorn (default) and uvicorn + httptools (fast), each in this
process or in N worker processes under a small supervisor. The listening socket is bound
here, before any worker starts, so `--port 0` works and the banner names the real port.

Stopping: SIGTERM or SIGINT makes the server stop accepting, begins the drain
(core/shutdown.py: requests in flight get `[server] shutdown_timeout_s`, streams still
open then end with an error event), waits at most that long plus `GRACE_S`, runs the
lifespan shutdown (plugins, providers, store, log), and exits 0. The signal may arrive
twice (a PyInstaller onefile bootloader forwards it, and systemd signals the whole
group): repeats change nothing. Under the supervisor, workers ignore SIGINT and the
supervisor turns SIGINT or SIGTERM into one SIGTERM per worker, then waits for all of
them, so no process is left behind.

This module owns signals and servers; it knows nothing of requests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from types import FrameType
from typing import Any, cast

import msgspec

from .config import Config, ConfigError
from .logging import json_stdlib_handler
from .shutdown import DRAIN, GRACE_S

__all__ = ["WorkerSpec", "bind", "run_worker", "serve"]


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs besides the app (which it builds from the environment)."""

    profile: str
    shutdown_timeout_s: float
    keep_alive_timeout: float
    backlog: int
    workers: int = 1
    supervised: bool = False
    log_format: str = "json"


def serve(config: Config) -> int:
    """Bind, print the banner, serve until SIGTERM/SIGINT; 0 after a graceful stop."""
    server = config.server
    sock = bind(server.host, server.port, server.backlog, source=config.source)
    host, port = sock.getsockname()[:2]
    workers = max(1, server.workers)
    spec = WorkerSpec(
        profile=server.profile,
        shutdown_timeout_s=server.shutdown_timeout_s,
        keep_alive_timeout=server.keep_alive_timeout,
        backlog=server.backlog,
        workers=workers,
        log_format=config.logging.format,
    )
    stack = "fast profile: uvicorn + httptools" if server.profile == "fast" else "hypercorn"
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    banner = f"serving on {url} ({stack}, {workers} worker(s), config: {config.source})"
    if spec.log_format == "json":  # every line on the output is JSON, this one too
        line = {"event": "serving", "level": "info", "url": url, "message": banner}
        print(msgspec.json.encode(line).decode(), file=sys.stderr, flush=True)
    else:
        print(f"interlock: {banner}", file=sys.stderr, flush=True)
    if workers == 1:
        return run_worker(spec, sock)
    return _supervise(replace(spec, supervised=True), sock, workers)


def bind(host: str, port: int, backlog: int, *, source: str = "<config>") -> socket.socket:
    """The listening socket, shared by every worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        raise ConfigError(
            f"{source}: [server] cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def run_worker(spec: WorkerSpec, sock: socket.socket) -> int:
    """One server on `sock` until stopped (a worker process's target, too)."""
    if spec.supervised:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor sends SIGTERM
    try:
        if spec.profile == "fast":
            _run_uvicorn(spec, sock)
        else:
            _run_hypercorn(spec, sock)
    finally:
        # The server's handlers are gone: a late repeat of the stop signal must not turn
        # a clean exit into death by signal.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
    return 0


def _server_logger(name: str, spec: WorkerSpec) -> logging.Logger:
    """The server library's logger writing JSON lines to stderr (`--log-format json`)."""
    logger = logging.getLogger(name)
    logger.handlers[:] = [json_stdlib_handler()]
    logger.setLevel(logging.INFO if name.startswith("hypercorn") else logging.WARNING)
    logger.propagate = False
    return logger


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# -- hypercorn (default profile) -------------------------------------------------------------
def _run_hypercorn(spec: WorkerSpec, sock: socket.socket) -> None:
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.config import Sockets
    from hypercorn.utils import wrap_app

    from .proxy_headers import create_served_app

    hc = HypercornConfig()
    hc.workers = spec.workers
    hc.keep_alive_timeout = spec.keep_alive_timeout
    hc.backlog = spec.backlog
    # Past the drain deadline the open streams end themselves; this is the server's
    # own limit for everything else.
    hc.graceful_timeout = spec.shutdown_timeout_s + GRACE_S
    hc.accesslog = None  # one structured line per request comes from the gateway itself
    hc.errorlog = _server_logger("hypercorn.error", spec) if spec.log_format == "json" else "-"
    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])

    async def main() -> None:
        # Handlers first: a stop signal during start-up stops the server once it is up.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM,) if spec.supervised else (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        app = wrap_app(cast(Any, create_served_app()), hc.wsgi_max_body_size, "asgi")

        async def stop_requested() -> None:  # hypercorn's shutdown trigger
            await stop.wait()
            DRAIN.begin(spec.shutdown_timeout_s)

        await worker_serve(app, hc, sockets=sockets, shutdown_trigger=stop_requested)

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


# -- uvicorn (fast profile) ------------------------------------------------------------------
def _run_uvicorn(spec: WorkerSpec, sock: socket.socket) -> None:
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from .proxy_headers import create_served_app

    class DrainingServer(uvicorn.Server):
        """uvicorn's Server, but a stop signal begins the drain and is not re-raised
        after the shutdown (uvicorn re-raises it, which would make the exit code 143)."""

        drain_loop: asyncio.AbstractEventLoop | None = None

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            self.drain_loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if spec.supervised and sig == signal.SIGINT:
                return
            if self.should_exit:
                return
            self.should_exit = True
            if self.drain_loop is not None:
                self.drain_loop.call_soon_threadsafe(DRAIN.begin, spec.shutdown_timeout_s)

    config = uvicorn.Config(
        create_served_app,
        factory=True,
        loop="uvloop" if _loop_factory() is not None else "asyncio",
        http=HttpToolsProtocol,
        ws="none",
        lifespan="on",
        access_log=False,
        # uvicorn would believe X-Forwarded-For from loopback by default; the app's own
        # middleware does it for [server] trusted_proxies only, as under hypercorn.
        proxy_headers=False,
        timeout_keep_alive=int(spec.keep_alive_timeout),
        timeout_graceful_shutdown=math.ceil(spec.shutdown_timeout_s + GRACE_S),
        backlog=spec.backlog,
        log_level="warning",
        log_config=None if spec.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    if spec.log_format == "json":
        _server_logger("uvicorn", spec)
    server = DrainingServer(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the app or its lifespan failed to start


# -- workers ---------------------------------------------------------------------------------
def _supervise(spec: WorkerSpec, sock: socket.socket, count: int) -> int:
    """`count` worker processes on one socket; a stop signal becomes one SIGTERM each.

    When a worker exits on its own (a crash), the others are stopped too and the exit code
    says so: a half-dead gateway is worse than a restart by systemd or the orchestrator.
    """
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=run_worker, args=(spec, sock), name=f"interlock-worker-{i + 1}")
        for i in range(count)
    ]
    stopping = False

    def forward() -> None:
        for proc in procs:
            if proc.pid is not None and proc.exitcode is None:
                os.kill(proc.pid, signal.SIGTERM)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            forward()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for proc in procs:
        proc.start()
    if stopping:  # a signal came while workers were starting
        forward()
    wait([proc.sentinel for proc in procs])
    if not stopping:  # a worker died without being asked to
        stopping = True
        forward()
    for proc in procs:
        proc.join()
    sock.close()
    _stop_resource_tracker()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    # A worker stopped by SIGTERM before it could install its handler stopped cleanly too.
    codes = [proc.exitcode for proc in procs]
    failed = [c for c in codes if c not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


def _stop_resource_tracker() -> None:
    """Spawning workers started multiprocessing's resource tracker process; it would
    outlive us by a moment. Stop and reap it now (a private API, hence the care)."""
    from multiprocessing import resource_tracker

    stop = getattr(getattr(resource_tracker, "_resource_tracker", None), "_stop", None)
    if callable(stop):
        stop()
