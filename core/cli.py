"""`interlock serve | mock-upstream | check-config | audit`.

The CLI validates the whole configuration in the parent process first (so a typo is one
clear line, not a traceback from every worker), then hands the app to the server by
import path; worker processes rebuild it from the same environment.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

import msgspec

from .config import CONFIG_ENV, Config, ConfigError, load_config

__all__ = ["main"]

LOG_FORMAT_ENV = "INTERLOCK_LOG_FORMAT"
PROFILE_ENV = "INTERLOCK_PROFILE"
APP_PATH = "interlock.core.app:create_app_from_env()"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interlock", description="Interlock LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        help=f"plugins.toml to use (default: ${CONFIG_ENV}, ./plugins.toml, built-in mock)",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument(
        "--fast", action="store_true", help='the fast profile: [server] profile = "fast"'
    )
    serve.add_argument("--log-format", choices=["json", "console"])

    mock = sub.add_parser("mock-upstream", help="run the mock LLM as an OpenAI-compatible server")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9000)
    mock.add_argument("--latency-ms", type=float, default=0.0)
    mock.add_argument("--chunk-delay-ms", type=float, default=0.0)
    mock.add_argument("--words", type=int, default=24)
    mock.add_argument("--chunks", type=int, default=8)

    check = sub.add_parser("check-config", help="validate a plugins.toml and exit")
    check.add_argument("file", nargs="?")

    # The audit plugin's own commands (export, verify): it parses the rest itself.
    audit = sub.add_parser("audit", help="the audit log: export, verify", add_help=False)
    audit.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["audit"]:  # `--help` and every option after it are the plugin's
        args = argparse.Namespace(command="audit", rest=argv[1:])
    else:
        args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "mock-upstream":
            return _mock(args)
        if args.command == "audit":
            # Imported by name: the core depends on no plugin (only this command does).
            audit_cli = importlib.import_module("interlock.plugins.audit.cli")
            return int(audit_cli.main(args.rest))
        return _check(args.file)
    except ConfigError as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return 2


def _validate(config: Config) -> Any:
    """Build the whole gateway once (store and counters opened, plugins made, nothing
    served) and close it again: every configuration mistake surfaces here as one line."""
    import asyncio

    from .app import Gateway

    gateway = Gateway(config)

    async def build() -> None:
        try:
            await gateway.open()
        finally:
            await gateway.close()
            gateway.log_setup.close()

    asyncio.run(build())
    return gateway


def _check(path: str | None) -> int:
    config = load_config(path)
    gateway = _validate(config)
    names = ", ".join(gateway.providers) or "none"
    plugins = ", ".join(e.name for e in config.plugins if e.enabled) or "none"
    print(f"{config.source}: ok; providers: {names}; plugins: {plugins}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    elif os.environ.get(CONFIG_ENV) is None and os.path.isfile("plugins.toml"):
        os.environ[CONFIG_ENV] = os.path.abspath("plugins.toml")
    if args.log_format:
        os.environ[LOG_FORMAT_ENV] = args.log_format
    config = load_config()
    _apply_overrides(config, args)
    # Validate plugins and providers before any worker starts; the workers log what they
    # find (a skipped provider), so this check stays quiet below errors.
    quiet = msgspec.structs.replace(
        config, logging=msgspec.structs.replace(config.logging, level="error")
    )
    gateway = _validate(quiet)
    if config.server.workers > 1 and config.counters.url.startswith("memory://"):
        stateful = [
            entry.name
            for entry, cls, _ in gateway.plugin_classes
            if getattr(cls, "needs_shared_counters", False)
        ]
        if stateful:
            raise ConfigError(
                f"{config.source}: [counters] key `url`: {config.server.workers} workers "
                f"with in-process counters would multiply the limits of {', '.join(stateful)}; set "
                'url = "redis://127.0.0.1:6379/0" or use --workers 1'
            )
    if config.server.profile == "fast":
        os.environ[PROFILE_ENV] = "fast"  # workers rebuild the app from the environment
        return _serve_fast(config)
    return _serve_hypercorn(config)


def _apply_overrides(config: Config, args: argparse.Namespace) -> None:
    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    if args.workers is not None:
        config.server.workers = args.workers
    if args.fast:
        config.server.profile = "fast"
    if args.log_format:
        config.logging.format = args.log_format


def hypercorn_config(config: Config) -> Any:
    from hypercorn.config import Config as HypercornConfig

    server = config.server
    hc = HypercornConfig()
    hc.bind = [f"{server.host}:{server.port}"]
    hc.application_path = APP_PATH
    hc.workers = 0 if server.workers <= 1 else server.workers
    hc.worker_class = "uvloop" if _has_uvloop() else "asyncio"
    hc.keep_alive_timeout = server.keep_alive_timeout
    hc.backlog = server.backlog
    hc.graceful_timeout = server.graceful_timeout
    hc.accesslog = None  # one structured line per request comes from the gateway itself
    hc.errorlog = "-"
    return hc


def _serve_hypercorn(config: Config) -> int:
    from hypercorn.run import run

    print(
        f"interlock: serving on http://{config.server.host}:{config.server.port} "
        f"(hypercorn, {max(1, config.server.workers)} worker(s), config: {config.source})",
        file=sys.stderr,
        flush=True,
    )
    return run(hypercorn_config(config))


def _serve_fast(config: Config) -> int:
    try:
        import aiohttp  # noqa: F401  the fast profile's client
        import httptools  # noqa: F401
        import uvicorn
    except ImportError:
        raise ConfigError(
            "[server] key `profile`: \"fast\" needs the fast extra: pip install 'interlock[fast]'"
        ) from None
    print(
        f"interlock: serving on http://{config.server.host}:{config.server.port} "
        f"(fast profile: uvicorn + httptools, {max(1, config.server.workers)} worker(s))",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        APP_PATH.removesuffix("()"),
        factory=True,
        host=config.server.host,
        port=config.server.port,
        workers=max(1, config.server.workers),
        loop="uvloop" if _has_uvloop() else "asyncio",
        http="httptools",
        access_log=False,
        timeout_keep_alive=int(config.server.keep_alive_timeout),
        backlog=config.server.backlog,
        log_level="warning",
    )
    return 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _mock(args: argparse.Namespace) -> int:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HypercornConfig

    from .mock_server import create_mock_app
    from .providers.mock import MockOptions

    options = MockOptions(
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        words=args.words,
        chunks=args.chunks,
    )
    hc = HypercornConfig()
    hc.bind = [f"{args.host}:{args.port}"]
    hc.accesslog = None
    print(
        f"interlock mock-upstream: http://{args.host}:{args.port}/v1", file=sys.stderr, flush=True
    )
    runner: Any
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        import asyncio

        runner = asyncio.run
    runner(serve(create_mock_app(options), hc))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
