"""How long to wait before trying the same deployment again: pure arithmetic.

Exponential backoff with "equal jitter": the n-th retry waits between half and all of
`min(max_s, base_s * 2**(n-1))`, so concurrent clients that failed together do not
retry together, yet every wait is at least half the nominal one. An upstream's
Retry-After is a floor (never retry sooner than it asked). A wait that would not end
before the request's deadline, or that is longer than `max_wait_s`, means "do not
retry this deployment": the caller moves on (or fails) instead of sleeping in vain.
"""

from __future__ import annotations

__all__ = ["backoff_s", "retry_wait"]


def backoff_s(retry: int, base_s: float, max_s: float, jitter: float) -> float:
    """The wait before the `retry`-th retry (1-based); `jitter` is a draw from [0, 1)."""
    nominal = min(max_s, base_s * 2.0 ** max(0, retry - 1))
    return nominal / 2 + nominal / 2 * jitter


def retry_wait(
    retry: int,
    *,
    base_s: float,
    max_s: float,
    jitter: float,
    retry_after_s: float | None,
    remaining_s: float,
    max_wait_s: float,
) -> float | None:
    """Seconds to wait before the retry, or None when it should not happen (the wait
    would reach the deadline, `remaining_s` from now, or exceed `max_wait_s`)."""
    wait = backoff_s(retry, base_s, max_s, jitter)
    if retry_after_s is not None and retry_after_s > wait:
        wait = retry_after_s
    if wait > max_wait_s or wait >= remaining_s:
        return None
    return wait
