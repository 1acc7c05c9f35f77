"""A hook without a README entry and a test is not done (datasette's rule)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from interlock.core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "interlock_spec")
)


def test_all_hooks_are_found() -> None:
    assert set(HOOKS) == {
        "pre_auth",
        "route",
        "pre_forward",
        "wrap_stream",
        "post_response",
        "startup",
        "shutdown",
        "register_routes",
        "on_attempt",
        "transform_response",
    }


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_in_the_readme(hook: str) -> None:
    assert f"`{hook}(" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    assert f"def {hook}(" in (ROOT / "tests" / "core" / "test_hooks.py").read_text()


def test_every_hook_has_a_contract_docstring() -> None:
    for name in HOOKS:
        assert len(inspect.getdoc(getattr(hookspecs, name)) or "") > 40, name
