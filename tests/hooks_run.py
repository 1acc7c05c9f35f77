"""Which hooks the tests really ran, and in which test module.

Datasette's rule, a hook without a test is not done, checked by what happened rather than
by searching test files for text. For the whole session (tests/conftest.py installs
this), every step of every per-request hook plan (`plugins._adapt` builds each one) and
every lifecycle implementation (`startup`, `shutdown`, `register_routes`, which the core
calls through pluggy's `HookImpl.function`) is wrapped to note the hook's name and the
test file running at the time. tests/test_docs.py reads `RAN` after every other test.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

from interlock.core import hookspecs, plugins
from interlock.core.plugins import HookPlans

# hook name -> the test files during which one of its implementations ran
RAN: defaultdict[str, set[Path]] = defaultdict(set)
# Node ids left out of this session (-k, -m, --lf): then not every hook test ran.
DESELECTED: list[str] = []
_running: list[Path | None] = [None]
# Hooks the core calls through pluggy's HookImpl rather than through a plan.
_LIFECYCLE = {
    name
    for name in dir(hookspecs)
    if hasattr(getattr(hookspecs, name), f"{hookspecs.PROJECT}_spec")
} - set(HookPlans.__slots__)


def running(test_file: Path | None) -> None:
    """Called around each test by tests/conftest.py."""
    _running[0] = test_file


def _noting(hook: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        if _running[0] is not None:
            RAN[hook].add(_running[0])
        return fn(*args, **kwargs)

    return step


def install(mp: pytest.MonkeyPatch) -> None:
    adapt = plugins._adapt

    def noting_adapt(fn: Callable[..., Any], argnames: tuple[str, ...], hook: str) -> Any:
        return _noting(hook, adapt(fn, argnames, hook))

    register = pluggy.PluginManager.register

    def noting_register(self: pluggy.PluginManager, plugin: Any, name: str | None = None) -> Any:
        result = register(self, plugin, name)
        if self.project_name == hookspecs.PROJECT and not isinstance(plugin, type):
            for caller in self.get_hookcallers(plugin) or ():
                if caller.name in _LIFECYCLE:
                    for impl in caller.get_hookimpls():
                        if impl.plugin is plugin:
                            impl.function = _noting(caller.name, impl.function)
        return result

    mp.setattr(plugins, "_adapt", noting_adapt)
    mp.setattr(pluggy.PluginManager, "register", noting_register)
