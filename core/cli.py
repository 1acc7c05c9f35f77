"""`interlock serve | mock-upstream | check-config | version | route --explain`, and the
commands plugins add (the `interlock.commands` entry-point group).

The CLI validates the whole configuration in the parent process first (so a typo is one
clear line, not a traceback from every worker), then hands over to core/serving.py, which
binds the socket and runs the server; worker processes rebuild the app from the same
environment. The same `main` is the single binary's entry point (scripts/build-binary).

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
import multiprocessing
import os
import sys
from importlib.metadata import entry_points
from typing import Any

import msgspec

from .config import CONFIG_ENV, DEMO_ENV, Config, ConfigError, literal_secrets, load_config

__all__ = ["COMMANDS_GROUP", "main"]

COMMANDS_GROUP = "interlock.commands"

LOG_FORMAT_ENV = "INTERLOCK_LOG_FORMAT"
PROFILE_ENV = "INTERLOCK_PROFILE"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interlock", description="Interlock LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        help=f"plugins.toml to use (default: ${CONFIG_ENV}, ./plugins.toml, built-in mock)",
    )
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument(
        "--port", type=int, help="port to listen on, 0 for any free one (default: [server] port)"
    )
    serve.add_argument("--workers", type=int, help="worker processes (default: [server] workers)")
    serve.add_argument(
        "--fast", action="store_true", help='the fast profile: [server] profile = "fast"'
    )
    serve.add_argument("--log-format", choices=["json", "console"])
    serve.add_argument(
        "--demo",
        action="store_true",
        help="turn tenant_auth on; on the first start, make a demo tenant and print its key",
    )

    mock = sub.add_parser(
        "mock-upstream",
        help="run the mock LLM as an OpenAI-compatible server",
        description="The built-in mock LLM as a standalone OpenAI-compatible server "
        "(/v1/chat/completions, streamed or not, and /v1/embeddings): a provider to point "
        "the gateway or a benchmark at.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mock.add_argument(
        "--port", type=int, default=9000, help="port to listen on, 0 for any free one"
    )
    mock.add_argument(
        "--latency-ms", type=float, default=0.0, help="wait before the first byte of every answer"
    )
    mock.add_argument(
        "--chunk-delay-ms", type=float, default=0.0, help="wait between streamed chunks"
    )
    mock.add_argument("--words", type=int, default=24, help="words in every answer")
    mock.add_argument(
        "--chunks", type=int, default=8, help="content chunks in a streamed answer (at least 5)"
    )

    check = sub.add_parser("check-config", help="validate a plugins.toml and exit")
    check.add_argument("file", nargs="?", help="the file (default: as `serve` finds it)")

    sub.add_parser(
        "version", help="show the version, the Python, and each profile's server and client"
    )

    route = sub.add_parser("route", help="how cost_router would route a request (nothing is sent)")
    route.add_argument("--explain", required=True, metavar="JSON", help="the request body")
    route.add_argument("--config", help="plugins.toml to read [plugins.cost_router] from")
    route.add_argument("--tenant", help="apply this tenant's overrides")
    route.add_argument("--feature", help="the request's feature tag (X-Feature)")
    for ep in entry_points(group=COMMANDS_GROUP):
        try:
            ep.load()(sub)
        except Exception as exc:  # one broken plugin must not take `serve` down
            print(f"interlock: commands '{ep.name}' ({ep.value}) skipped: {exc}", file=sys.stderr)
    return parser


def main(argv: list[str] | None = None) -> int:
    # In the single binary a worker process starts as this same executable: this runs the
    # worker and exits (outside a frozen build it does nothing).
    multiprocessing.freeze_support()
    args = _parser().parse_args(argv)
    try:
        run = getattr(args, "run", None)
        if run is not None:
            return int(run(args))
        if args.command == "serve":
            return _serve(args)
        if args.command == "mock-upstream":
            return _mock(args)
        if args.command == "version":
            from .version import report

            print("\n".join(report()))
            return 0
        if args.command == "route":
            return _route(args)
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
    for where in literal_secrets(config):
        print(f"interlock: warning: {config.source}: {where}: {LITERAL_SECRET}", file=sys.stderr)
    gateway = _validate(config)
    names = ", ".join(gateway.providers) or "none"
    plugins = ", ".join(e.name for e in config.plugins if e.enabled) or "none"
    print(f"{config.source}: ok; providers: {names}; plugins: {plugins}")
    return 0


def _route(args: argparse.Namespace) -> int:
    # A plugin's module, imported only for this command: the core never depends on it.
    from interlock.plugins.cost_router.explain import explain_command

    config = load_config(args.config)
    print(explain_command(config, args.explain, tenant=args.tenant, feature=args.feature))
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
    _warn_literal_secrets(config)
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
        _check_fast_profile()
        os.environ[PROFILE_ENV] = "fast"  # workers rebuild the app from the environment
    from .serving import serve

    return serve(config)


def say(config: Config, event: str, message: str, level: str = "info", **fields: Any) -> None:
    """A line for the operator on stderr before the server runs: JSON when the log
    format is JSON (every line `serve` prints is then JSON), else `interlock: message`."""
    if config.logging.format == "json":
        line = {"event": event, "level": level, **fields, "message": message}
        print(msgspec.json.encode(line).decode(), file=sys.stderr, flush=True)
    else:
        print(f"interlock: {message}", file=sys.stderr, flush=True)


def _warn_if_open(config: Config, gateway: Any) -> None:
    """Serving beyond this machine with no plugin on `pre_auth`: anyone who reaches the
    port spends the configured provider keys. Say so, and how to turn auth on."""
    host = config.server.host
    if _is_loopback(host) or any(
        _implements(cls, "pre_auth") for _, cls, _ in gateway.plugin_classes
    ):
        return
    say(
        config,
        "no_auth_plugin",
        f"WARNING: serving on {host} with no auth plugin: anyone who can reach this port "
        "can use the configured providers. Turn on tenant_auth: set `enabled = true` "
        "under [plugins.tenant_auth] in plugins.toml, then `interlock tenants create NAME` "
        "and `interlock keys create --tenant NAME` (or try `interlock serve --demo`).",
        level="warning",
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


LITERAL_SECRET = "a literal secret; write env:NAME and set the variable NAME instead"


def _warn_literal_secrets(config: Config) -> None:
    """One warning line per literal secret in plugins.toml (JSON when the log format is),
    naming the table and key, never the value."""
    for where in literal_secrets(config):
        message = f"{config.source}: {where}: {LITERAL_SECRET}"
        say(config, "literal_secret", message, level="warning", where=where)


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


def _check_fast_profile() -> None:
    try:
        import aiohttp  # noqa: F401  the fast profile's client
        import httptools  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError(
            "[server] key `profile`: \"fast\" needs the fast extra: pip install 'interlock[fast]'"
        ) from None


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
