"""A hook without a README entry and a test that runs it is not done (datasette's rule)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from interlock.core import hookspecs
from tests import hooks_run

ROOT = Path(__file__).resolve().parents[1]
TEST_HOOKS = ROOT / "tests" / "core" / "test_hooks.py"
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


def test_every_hook_ran_in_test_hooks(request: pytest.FixtureRequest) -> None:
    """Each hook had an implementation actually called by a test in tests/core/test_hooks.py
    during this session (tests/hooks_run.py notes it; tests/conftest.py runs this last).
    Meaningful only when the whole suite ran: a partial run skips it."""
    config = request.config
    here = config.invocation_params.dir
    whole = not hooks_run.DESELECTED and all(
        (here / arg).resolve() in (ROOT, ROOT / "tests") for arg in config.args
    )
    if not whole:
        pytest.skip("runs only with the whole suite (`pytest` with no selection)")
    untested = [hook for hook in HOOKS if TEST_HOOKS not in hooks_run.RAN[hook]]
    assert untested == [], f"no test in {TEST_HOOKS.name} ran an implementation of {untested}"


def test_every_hook_has_a_contract_docstring() -> None:
    for name in HOOKS:
        assert len(inspect.getdoc(getattr(hookspecs, name)) or "") > 40, name
