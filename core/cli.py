"""`interlock serve | mock-upstream | check-config`, and the commands plugins add.

The CLI validates the whole configuration in the parent process first (so a typo is one
clear line, not a traceback from every worker), then hands the app to the server by
import path; worker processes rebuild it from the same environment.

A plugin adds commands (`interlock tenants ...`) through the `interlock.commands` entry
point group: each entry is a function taking argparse's subparsers; it adds its parsers
and sets `run` (a function of the parsed arguments returning the exit status) as their
default. An entry point, not an import here, so the core names no plugin and a
third-party package can add commands the same way.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import os
import sys
from importlib.metadata import entry_points
from typing import Any

import msgspec

from .config import CONFIG_ENV, DEMO_ENV, Config, ConfigError, load_config

__all__ = ["COMMANDS_GROUP", "main"]

COMMANDS_GROUP = "interlock.commands"

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
    serve.add_argument(
        "--demo",
        action="store_true",
        help="turn tenant_auth on; on the first start, make a demo tenant and print its key",
    )

    mock = sub.add_parser("mock-upstream", help="run the mock LLM as an OpenAI-compatible server")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9000)
    mock.add_argument("--latency-ms", type=float, default=0.0)
    mock.add_argument("--chunk-delay-ms", type=float, default=0.0)
    mock.add_argument("--words", type=int, default=24)
    mock.add_argument("--chunks", type=int, default=8)

    check = sub.add_parser("check-config", help="validate a plugins.toml and exit")
    check.add_argument("file", nargs="?")
    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            ep.load()(sub)
        except Exception as exc:  # one broken plugin must not take `serve` down
            print(f"interlock: commands '{ep.name}' ({ep.value}) skipped: {exc}", file=sys.stderr)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run = getattr(args, "run", None)
        if run is not None:
            return int(run(args))
        if args.command == "serve":
            return _serve(args)
        if args.command == "mock-upstream":
            return _mock(args)
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
    if args.demo:
        os.environ[DEMO_ENV] = "1"  # load_config turns tenant_auth on, here and in workers
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
    _warn_if_open(config, gateway)
    if args.demo:  # the built-in tenant_auth makes the demo tenant and prints its key
        importlib.import_module("interlock.plugins.tenant_auth.cli").demo(config)
    if config.server.profile == "fast":
        os.environ[PROFILE_ENV] = "fast"  # workers rebuild the app from the environment
        return _serve_fast(config)
    return _serve_hypercorn(config)


def _warn_if_open(config: Config, gateway: Any) -> None:
    """Serving beyond this machine with no plugin on `pre_auth`: anyone who reaches the
    port spends the configured provider keys. Say so, and how to turn auth on."""
    host = config.server.host
    if _is_loopback(host) or any(
        _implements(cls, "pre_auth") for _, cls, _ in gateway.plugin_classes
    ):
        return
    print(
        f"interlock: WARNING: serving on {host} with no auth plugin: anyone who can reach "
        "this port can use the configured providers. Turn on tenant_auth: set "
        "`enabled = true` under [plugins.tenant_auth] in plugins.toml, then "
        "`interlock tenants create NAME` and `interlock keys create --tenant NAME` "
        "(or try `interlock serve --demo`).",
        file=sys.stderr,
        flush=True,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def _implements(cls: type[Any], hook: str) -> bool:
    for value in vars(cls).values():
        opts = getattr(value, "interlock_impl", None)
        if opts is not None and (opts.get("specname") or value.__name__) == hook:
            return True
    return any(_implements(base, hook) for base in cls.__bases__ if base is not object)


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
