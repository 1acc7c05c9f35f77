"""Finding plugins, making them, and snapshotting their hooks into call plans.

Built-in and third-party plugins are found the same way, through the `interlock.plugins`
entry-point group; a local file works too (`[plugins.NAME] path = "./x.py"`). pluggy
keeps the specs and validation; at start-up each hook's implementations are frozen into a
plan (a tuple of callables in plugins.toml order) that the pipeline loops over, so the
per-request path never touches pluggy and a disabled plugin is simply absent.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import pluggy

from . import hookspecs
from .config import Config, ConfigError, PluginEntry, convert_table
from .services import Services
from .store import Migration

if TYPE_CHECKING:
    from .providers.base import Provider

__all__ = [
    "ENTRY_POINT_GROUP",
    "EmptyConfig",
    "HookPlans",
    "Plan",
    "Plugin",
    "find_plugin_classes",
    "make_plugins",
]

ENTRY_POINT_GROUP = "interlock.plugins"


class EmptyConfig(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Plugin:
    """Base class for plugins: a `name`, a `Config` Struct, hook methods.

    Subclasses set `Config` to a `msgspec.Struct` with `forbid_unknown_fields=True`; the
    plugin's table in plugins.toml (minus `enabled` and `path`) is converted into it, so
    a typo stops start-up with the file, table and key.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[msgspec.Struct]] = EmptyConfig
    # True when the plugin keeps per-request state in the counters store (rate limits,
    # budgets): then more than one worker needs a shared counters URL.
    needs_shared_counters: ClassVar[bool] = False
    # The plugin's tables, as numbered schema versions: the store applies the missing
    # ones at start-up (recorded per plugin name), before the plugin is constructed.
    migrations: ClassVar[tuple[Migration, ...]] = ()
    # New wire formats usable as `kind` in [[providers]]: read from the class before any
    # plugin is made, because every plugin receives the finished providers.
    provider_kinds: ClassVar[dict[str, type[Provider]]] = {}

    def __init__(self, config: Any, services: Services) -> None:
        self.config = config
        self.services = services


# An entry in a plan: the implementation and whether its result must be awaited.
Step = tuple[Callable[..., Any], bool]
Plan = tuple[Step, ...]


class HookPlans:
    """Each per-request hook's implementations in call order, frozen at start-up."""

    __slots__ = (
        "on_attempt",
        "post_response",
        "pre_auth",
        "pre_forward",
        "route",
        "transform_response",
        "wrap_stream",
    )

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pre_auth = _plan(pm, "pre_auth")
        self.route = _plan(pm, "route")
        self.pre_forward = _plan(pm, "pre_forward")
        self.on_attempt = _plan(pm, "on_attempt")
        self.wrap_stream = _plan(pm, "wrap_stream")
        self.transform_response = _plan(pm, "transform_response")
        self.post_response = _plan(pm, "post_response")


def _plan(pm: pluggy.PluginManager, hook: str) -> Plan:
    caller = getattr(pm.hook, hook)
    # pluggy calls implementations from the end of this list; that is our order.
    steps: list[Step] = []
    for impl in reversed(caller.get_hookimpls()):
        fn = impl.function
        if hook in _SYNC_ONLY and (
            inspect.iscoroutinefunction(fn) or (hook == "route" and _is_async(fn))
        ):
            raise ConfigError(
                f"[plugins.{impl.plugin_name}]: `{hook}` must be a plain `def`: it runs on "
                "every request and may do no I/O (state-dependent choices belong in pre_forward)"
            )
        steps.append((_adapt(fn, impl.argnames, hook), _is_async(fn)))
    return tuple(steps)


_SYNC_ONLY = {"route", "wrap_stream"}


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


_SPEC_ARGS = {
    "pre_auth": ("ctx",),
    "route": ("ctx",),
    "pre_forward": ("ctx",),
    "on_attempt": ("ctx", "attempt"),
    "wrap_stream": ("ctx", "stream"),
    "transform_response": ("ctx", "body"),
    "post_response": ("ctx",),
}


def _adapt(fn: Callable[..., Any], argnames: tuple[str, ...], hook: str) -> Callable[..., Any]:
    """Call every step with the spec's arguments positionally; pluggy lets an
    implementation take fewer, so those few get a small adapter once, at start-up."""
    spec = _SPEC_ARGS[hook]
    if argnames == spec:
        return fn
    picks = tuple(spec.index(a) for a in argnames)
    return lambda *args: fn(*(args[i] for i in picks))


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


PluginClass = tuple[PluginEntry, type[Any], Any]  # (table, class, its converted settings)


def find_plugin_classes(config: Config) -> list[PluginClass]:
    """Import every enabled plugin's class, in plugins.toml order, without making any.

    Disabled plugins are never imported. A class whose `name` is not its table's name is
    refused here, naming both: otherwise a renamed plugin would silently do nothing.
    """
    found: list[PluginClass] = []
    available: dict[str, Any] | None = None
    for entry in config.plugins:
        if not entry.enabled:
            continue
        if entry.path is None and available is None:
            available = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        cls = _find_class(entry, config, available or {})
        declared = getattr(cls, "name", "")
        if declared != entry.name:
            raise ConfigError(
                f"{config.source}: [plugins.{entry.name}]: the plugin class "
                f"{cls.__module__}.{cls.__qualname__} is named '{declared}', not "
                f"'{entry.name}': rename the table or the class's `name`"
            )
        found.append((entry, cls, _settings(cls, entry, config)))
    _check_hook_names(config, found)
    return found


def _check_hook_names(config: Config, found: list[PluginClass]) -> None:
    """A hookimpl whose name is no hook (a typo) is refused before anything is made."""
    pm = make_plugin_manager()
    for entry, cls, _ in found:
        pm.register(cls, name=entry.name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"{config.source}: {exc}") from None


def make_plugins(
    config: Config, classes: list[PluginClass], services: Services
) -> tuple[pluggy.PluginManager, list[Any]]:
    """Make the plugins (services are complete by now) and register them with pluggy.

    Registration runs in reverse order because pluggy calls the last registered first;
    `HookPlans` then reads plugins.toml order.
    """
    pm = make_plugin_manager()
    made = [
        (entry.name, _instantiate(cls, settings, entry, config, services))
        for entry, cls, settings in classes
    ]
    for name, instance in reversed(made):
        pm.register(instance, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"{config.source}: {exc}") from None
    return pm, [instance for _, instance in made]


def _find_class(entry: PluginEntry, config: Config, available: dict[str, Any]) -> type[Any]:
    where = f"{config.source}: [plugins.{entry.name}]"
    if entry.path is not None:
        return _class_from_file(entry, Path(config.base_dir), where)
    ep = available.get(entry.name)
    if ep is None:
        known = ", ".join(sorted(available)) or "none installed"
        raise ConfigError(f"{where}: unknown plugin (installed: {known}; or give `path`)")
    try:
        loaded = ep.load()
    except Exception as exc:
        raise ConfigError(f"{where}: could not import {ep.value}: {exc}") from exc
    if not isinstance(loaded, type):
        raise ConfigError(f"{where}: entry point {ep.value} is not a class")
    return loaded


def _class_from_file(entry: PluginEntry, base_dir: Path, where: str) -> type[Any]:
    path = Path(entry.path or "")
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise ConfigError(f"{where} key `path`: no file {path}")
    module_name = f"interlock_local_plugin_{entry.name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{where} key `path`: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{where} key `path`: {path} failed to import: {exc}") from exc
    # Classes defined in the file itself (an imported base class never counts).
    defined = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == module_name and hasattr(obj, "name")
    ]
    named = [obj for obj in defined if obj.name == entry.name]
    if len(named) == 1:
        return named[0]
    if len(named) == 0 and len(defined) == 1:
        return defined[0]  # refused by the name check, which names both
    raise ConfigError(
        f'{where} key `path`: {path} must define one class with name = "{entry.name}"'
    )


def _settings(cls: type[Any], entry: PluginEntry, config: Config) -> Any:
    """The plugin's table converted into its `Config` Struct (a typo names the key)."""
    config_type = getattr(cls, "Config", None)
    table = f"plugins.{entry.name}"
    if config_type is None:
        if entry.settings:
            key = next(iter(entry.settings))
            raise ConfigError(f"{config.source}: [{table}] key `{key}`: unknown key")
        return None
    return convert_table(entry.settings, config_type, source=config.source, table=table)


def _instantiate(
    cls: type[Any], settings: Any, entry: PluginEntry, config: Config, services: Services
) -> Any:
    try:
        return cls(settings, services)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"{config.source}: [plugins.{entry.name}]: plugin failed to start: {exc}"
        ) from exc
