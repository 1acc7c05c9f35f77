"""The wait before retrying a deployment: exponential, jittered, floored by Retry-After,
never past the deadline. Pure arithmetic, so tested without a clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.core.errors import retry_after_s
from interlock.plugins.failover.backoff import backoff_s, retry_wait

retries = st.integers(1, 30)
bases = st.floats(0.0, 5.0)
jitters = st.floats(0.0, 1.0, exclude_max=True)


@given(retry=retries, base=bases, cap=st.floats(0.0, 60.0), jitter=jitters)
def test_backoff_is_between_half_and_all_of_the_capped_exponential(
    retry: int, base: float, cap: float, jitter: float
) -> None:
    nominal = min(cap, base * 2 ** (retry - 1))
    wait = backoff_s(retry, base, cap, jitter)
    assert nominal / 2 <= wait <= nominal


@given(retry=st.integers(1, 29), base=bases, jitter=jitters)
def test_backoff_grows_until_the_cap(retry: int, base: float, jitter: float) -> None:
    cap = 1e9
    # The same draw: the next retry waits at least as long (twice, before the cap).
    assert backoff_s(retry + 1, base, cap, jitter) >= backoff_s(retry, base, cap, jitter)


def test_backoff_doubles() -> None:
    waits = [backoff_s(n, 0.25, 8.0, 1.0 - 1e-12) for n in (1, 2, 3, 6, 7)]
    assert waits == pytest.approx([0.25, 0.5, 1.0, 8.0, 8.0])
    assert backoff_s(3, 0.25, 8.0, 0.0) == 0.5  # no jitter drawn: half the nominal wait


@given(
    retry=retries,
    base=bases,
    jitter=jitters,
    retry_after=st.none() | st.floats(0.0, 120.0),
    remaining=st.floats(0.0, 120.0),
    max_wait=st.floats(0.0, 60.0),
)
def test_a_retry_wait_honours_retry_after_and_never_reaches_the_deadline(
    retry: int,
    base: float,
    jitter: float,
    retry_after: float | None,
    remaining: float,
    max_wait: float,
) -> None:
    wait = retry_wait(
        retry,
        base_s=base,
        max_s=30.0,
        jitter=jitter,
        retry_after_s=retry_after,
        remaining_s=remaining,
        max_wait_s=max_wait,
    )
    wanted = max(backoff_s(retry, base, 30.0, jitter), retry_after or 0.0)
    if wait is None:
        assert wanted >= remaining or wanted > max_wait
    else:
        assert wait == wanted
        assert wait < remaining
        assert wait <= max_wait
        if retry_after is not None:
            assert wait >= retry_after


def test_retry_after_header_values() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"retry-after": "-4"}) == 0.0
    assert retry_after_s({}) is None
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({"retry-after": "nan"}) is None
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
