"""plugins.toml into typed, validated settings, with errors that name file, table and key.

Reading the file is the only I/O here and happens once, at start-up (never per request).
Secrets are written as `env:NAME` references and resolved into `Secret` objects whose
repr never shows the value, so a config dump in a log or a traceback leaks nothing.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

__all__ = [
    "CONFIG_ENV",
    "DEMO_ENV",
    "Config",
    "ConfigError",
    "CountersConfig",
    "LoggingConfig",
    "PluginEntry",
    "PriceOverride",
    "ProviderConfig",
    "ResponsesConfig",
    "Secret",
    "ServerConfig",
    "StoreConfig",
    "convert_table",
    "default_config",
    "literal_secrets",
    "load_config",
    "resolve_secret",
]

CONFIG_ENV = "INTERLOCK_CONFIG"
# Set by `interlock serve --demo` (for its workers too): tenant_auth is on whatever the
# file says, so the demo key it prints is the one requests need.
DEMO_ENV = "INTERLOCK_DEMO"
T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, as one line: `FILE: [TABLE] key `k`: what is wrong`."""


class Secret:
    """A key resolved from the environment; its repr and str never show the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


def resolve_secret(ref: str | None, *, where: str) -> Secret | None:
    """`env:NAME` -> the variable's value (None when unset); anything else is a literal."""
    if ref is None or ref == "":
        return None
    if ref.startswith("env:"):
        name = ref[4:]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"{where}: `{ref}` is not a valid env:NAME reference")
        value = os.environ.get(name)
        return Secret(value, f"env:{name}") if value else None
    return Secret(ref, "literal")


class _Table(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerConfig(_Table):
    host: str = "127.0.0.1"
    port: int = 4000
    max_body_bytes: int = 4_000_000
    workers: int = 1
    # "default": hypercorn + httpx (the design card's stack); "fast": the measured
    # fastest server and upstream client installed with the `fast` extra.
    profile: Literal["default", "fast"] = "default"
    # Upstream HTTP client under the forwarder: "httpx" (default transport),
    # "httpx-aiohttp" (httpx API over aiohttp's transport) or "aiohttp" (direct).
    # Unset, the profile chooses (`upstream_client`), so `--fast` is the one switch.
    client: Literal["httpx", "httpx-aiohttp", "aiohttp"] | None = None
    # One deadline per request across every attempt and failover (504 when it passes);
    # a client may ask for another with `x-interlock-timeout-s`, up to the maximum.
    request_timeout_s: float = 600.0
    max_request_timeout_s: float = 3600.0
    keep_alive_timeout: float = 75.0
    backlog: int = 2048
    # On SIGTERM/SIGINT, requests in flight get this long to finish; streams still open
    # then end with an error event in the caller's format (core/shutdown.py).
    shutdown_timeout_s: float = 10.0
    # Addresses or networks ("10.0.0.0/8") of reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed; empty: nobody's (both profiles, core/proxy_headers.py).
    trusted_proxies: list[str] = []

    def upstream_client(self) -> str:
        """`client` when set, else the profile's measured choice (bench/README.md):
        aiohttp directly for "fast", httpx over httpx-aiohttp's transport by default."""
        if self.client is not None:
            return self.client
        return "aiohttp" if self.profile == "fast" else "httpx-aiohttp"


class StoreConfig(_Table):
    url: str = "sqlite:///interlock.db"


class CountersConfig(_Table):
    url: str = "memory://"


class ResponsesConfig(_Table):
    """`/v1/responses` served by translation: how long the gateway keeps a conversation
    (for `previous_response_id` and `GET /v1/responses/{id}`), in seconds."""

    ttl_s: int = 30 * 24 * 3600  # OpenAI keeps stored responses for 30 days


class LoggingConfig(_Table):
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"


class PriceOverride(_Table):
    """USD per million tokens; `cached_input` defaults to `input`."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


class ProviderConfig(_Table):
    """The keys every provider kind shares; kind-specific keys land in `options` and are
    validated by the provider class's own `Options` Struct."""

    name: str
    kind: str
    base_url: str | None = None
    api_key: str | None = None
    models: list[str] = []
    # Our model name -> the name the upstream expects (deployment names, vendor prefixes).
    model_map: dict[str, str] = {}
    headers: dict[str, str] = {}
    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    max_connections: int = 512
    max_keepalive: int = 128
    options: dict[str, Any] = {}

    def serves(self, model: str) -> bool:
        return model in self.models or "*" in self.models


class PluginEntry(msgspec.Struct, kw_only=True):
    name: str
    enabled: bool = True
    path: str | None = None
    settings: dict[str, Any] = {}


class Config(msgspec.Struct, kw_only=True):
    source: str = "<built-in defaults>"
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    counters: CountersConfig = msgspec.field(default_factory=CountersConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    responses: ResponsesConfig = msgspec.field(default_factory=ResponsesConfig)
    providers: list[ProviderConfig] = []
    plugins: list[PluginEntry] = []
    pricing: dict[str, PriceOverride] = {}
    base_dir: str = "."


_TOP_LEVEL = {
    "server",
    "store",
    "counters",
    "logging",
    "responses",
    "providers",
    "plugins",
    "pricing",
}
_PROVIDER_COMMON = set(ProviderConfig.__struct_fields__) - {"options"}
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<key>[^`]+)`")


def convert_table(data: Any, type_: type[T], *, source: str, table: str) -> T:
    """`msgspec.convert` with the error rewritten to name the file, table and key."""
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), source=source, table=table)) from None


def _explain(message: str, *, source: str, table: str) -> str:
    match = _AT.match(message)
    assert match is not None
    msg, path = match["msg"], (match["path"] or "")
    key = path.lstrip(".")
    if found := _UNKNOWN.match(msg):
        key = f"{key}.{found['key']}" if key else found["key"]
        msg = "unknown key"
    elif found := _MISSING.match(msg):
        key = f"{key}.{found['key']}" if key else found["key"]
        msg = "missing required key"
    else:
        msg = msg.replace("`", "")
    where = f"[{table}]" + (f" key `{key}`" if key else "")
    return f"{source}: {where}: {msg}"


_SECRET_NAMES = frozenset({"api_key", "master_key", "secret", "password", "token"})


def _looks_secret(key: str, value: Any) -> bool:
    """A secret-named key holding a literal that could be a credential. A short word in
    lower case (`api_key = "redact"`: an action, a mode) is a setting, not a secret."""
    name = key.lower()
    named = name in _SECRET_NAMES or name.endswith("_key")
    if not (named and isinstance(value, str) and value) or value.startswith("env:"):
        return False
    return _SETTING_WORD.fullmatch(value) is None


_SETTING_WORD = re.compile(r"[a-z][a-z_]{0,15}")


def literal_secrets(config: Config) -> list[str]:
    """Where plugins.toml holds a secret as a literal instead of an `env:NAME` reference:
    `[TABLE] key `KEY``, one per finding, never the value. String values of `api_key`,
    `master_key`, any `*_key`, `secret`, `password` and `token` count, in provider tables
    and plugin tables (and the tables and arrays of tables nested in them). A warning,
    not an error: the value still works."""
    found: list[str] = []
    for provider in config.providers:
        table = f"[providers '{provider.name}']"
        if _looks_secret("api_key", provider.api_key):
            found.append(f"{table} key `api_key`")
        found += [f"{table} key `{k}`" for k, v in provider.options.items() if _looks_secret(k, v)]
    for plugin in config.plugins:
        todo: list[tuple[str, dict[str, Any]]] = [(f"plugins.{plugin.name}", plugin.settings)]
        while todo:
            name, settings = todo.pop()
            for key, value in settings.items():
                if isinstance(value, dict):
                    todo.append((f"{name}.{key}", value))
                elif isinstance(value, list):
                    todo += [(f"{name}.{key}", v) for v in value if isinstance(v, dict)]
                elif _looks_secret(key, value):
                    found.append(f"[{name}] key `{key}`")
    return sorted(set(found))


def default_config() -> Config:
    """No file at all: serve every model on the built-in mock so the whole path works."""
    return Config(providers=[ProviderConfig(name="mock", kind="mock", models=["*"])])


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read `path`, else $INTERLOCK_CONFIG, else ./plugins.toml, else built-in defaults."""
    config = _load(path)
    if os.environ.get(DEMO_ENV) == "1":
        _enable(config, "tenant_auth")
    return config


def _enable(config: Config, name: str) -> None:
    """Switch a plugin on: its table's `enabled`, or a table of its own, listed first."""
    for entry in config.plugins:
        if entry.name == name:
            entry.enabled = True
            return
    config.plugins.insert(0, PluginEntry(name=name))


def _load(path: str | os.PathLike[str] | None) -> Config:
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        if not Path("plugins.toml").is_file():
            return default_config()
        path = "plugins.toml"
    file = Path(path)
    source = str(file)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(raw, source=source, base_dir=str(file.resolve().parent))


def parse_config(raw: dict[str, Any], *, source: str, base_dir: str = ".") -> Config:
    for key in raw:
        if key not in _TOP_LEVEL:
            raise ConfigError(f"{source}: [{key}]: unknown table")

    def table(name: str, type_: type[T]) -> T:
        return convert_table(raw.get(name, {}), type_, source=source, table=name)

    providers = [_provider(t, i, source) for i, t in enumerate(_list(raw, "providers", source))]
    names = [p.name for p in providers]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{source}: [[providers]] key `name`: '{name}' is used twice")

    plugins_raw = raw.get("plugins", {})
    if not isinstance(plugins_raw, dict):
        raise ConfigError(f"{source}: [plugins]: must be a table of [plugins.NAME] tables")
    plugins = [_plugin(name, body, source) for name, body in plugins_raw.items()]

    pricing_raw = raw.get("pricing", {})
    pricing = convert_table(pricing_raw, dict[str, PriceOverride], source=source, table="pricing")
    server = table("server", ServerConfig)
    if server.max_body_bytes < 1024:
        raise ConfigError(f"{source}: [server] key `max_body_bytes`: must be at least 1024")
    responses = table("responses", ResponsesConfig)
    if responses.ttl_s < 1:
        raise ConfigError(f"{source}: [responses] key `ttl_s`: must be at least 1 (seconds)")
    if not 0 < server.request_timeout_s <= server.max_request_timeout_s:
        raise ConfigError(
            f"{source}: [server] key `request_timeout_s`: must be > 0 and at most "
            "`max_request_timeout_s`"
        )
    if server.shutdown_timeout_s < 0:
        raise ConfigError(f"{source}: [server] key `shutdown_timeout_s`: must not be negative")
    for proxy in server.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"{source}: [server] key `trusted_proxies`: {proxy!r} is not an IP address "
                'or network (for example "127.0.0.1" or "10.0.0.0/8")'
            ) from None
    return Config(
        source=source,
        server=server,
        store=table("store", StoreConfig),
        counters=table("counters", CountersConfig),
        logging=table("logging", LoggingConfig),
        responses=responses,
        providers=providers,
        plugins=plugins,
        pricing=pricing,
        base_dir=base_dir,
    )


def _list(raw: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{source}: [[{key}]]: must be an array of tables")
    return value


def _provider(body: dict[str, Any], index: int, source: str) -> ProviderConfig:
    label = f"[providers] #{index + 1}" + (f" '{body['name']}'" if "name" in body else "")
    common = {k: v for k, v in body.items() if k in _PROVIDER_COMMON}
    options = {k: v for k, v in body.items() if k not in _PROVIDER_COMMON}
    config = convert_table(common, ProviderConfig, source=source, table=label.strip("[]"))
    config.options = options
    return config


def _plugin(name: str, body: Any, source: str) -> PluginEntry:
    if not isinstance(body, dict):
        raise ConfigError(f"{source}: [plugins.{name}]: must be a table")
    settings = dict(body)
    enabled = settings.pop("enabled", True)
    path = settings.pop("path", None)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{source}: [plugins.{name}] key `enabled`: Expected bool")
    if path is not None and not isinstance(path, str):
        raise ConfigError(f"{source}: [plugins.{name}] key `path`: Expected str")
    return PluginEntry(name=name, enabled=enabled, path=path, settings=settings)
