"""CI's promise: a test that needs Redis or PostgreSQL fails, not skips, when they are down."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()


def test_a_skipped_services_test_fails_when_services_are_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(
        CONFTEST.replace("from tests.support import FakeUpstream, fake_upstream\n", "").replace(
            "tuple[FakeUpstream, str]", "object"
        )
    )
    pytester.makeini(
        "[pytest]\nmarkers =\n    services: needs Redis or PostgreSQL\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.services
        def test_needs_redis():
            pytest.skip("redis is down")

        def test_plain():
            pytest.skip("not about services")
    """
    )
    monkeypatch.setenv("INTERLOCK_REQUIRE_SERVICES", "1")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, skipped=1)
    monkeypatch.setenv("INTERLOCK_REQUIRE_SERVICES", "0")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
