"""The circuit breaker of one (provider, model), as a pure state machine.

No I/O, no clock, no randomness: every function takes the state and `now` and returns
a new state, so the machine is property-tested (tests/plugins/failover/test_breaker.py)
and the plugin stores the state wherever it likes (circuits.py: the counters backend).

States (`view`)::

    closed ──(N consecutive failures, or error rate >= R over a window)──▶ open
    open ──(cool-down elapsed)──▶ half_open            (derived from time, never stored)
    half_open ──(a success)──▶ closed                  (counts reset)
    half_open ──(a failure)──▶ open                    (a new cool-down from now)

- closed: requests pass. A success resets the consecutive-failure count. The error-rate
  window opens at the first failure and lasts `window_s`; successes and failures inside
  it are counted, and the circuit opens when at least `min_requests` outcomes were seen
  and `errors / total >= error_rate` (0 disables this rule). A window with no failure
  in it costs nothing to keep, which is why it starts at a failure: a healthy circuit
  is never written to.
- open: requests are refused until `until`; `admit` says how long is left (the
  Retry-After). Outcomes arriving while open (requests admitted before it opened) are
  ignored: they say nothing about the time after the cool-down.
- half_open: `admit` answers PROBE; the caller lets ONE request through (circuits.py
  claims a key with a TTL so only one replica's request goes) and its outcome decides.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

import msgspec

__all__ = ["Admission", "Circuit", "Policy", "Verdict", "admit", "record", "view"]

State = Literal["closed", "open", "half_open"]


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    failure_threshold: int = 5  # consecutive failures that open the circuit
    error_rate: float = 0.5  # or this share of failures in a window (0: rule off)
    min_requests: int = 10  # ... once the window holds at least this many outcomes
    window_s: float = 60.0
    cooldown_s: float = 30.0  # how long an open circuit refuses before a probe


class Circuit(msgspec.Struct, frozen=True, omit_defaults=True):
    """What is stored (compact JSON: a healthy circuit is `{}`, and is not stored)."""

    open: bool = False
    until: float = 0.0  # open: when the cool-down ends (wall-clock seconds)
    failures: int = 0  # consecutive failures while closed
    window_start: float = 0.0  # 0: no error window running
    window_errors: int = 0
    window_total: int = 0

    @property
    def clean(self) -> bool:
        """Closed with nothing counted: a success changes nothing."""
        return not self.open and self.failures == 0 and self.window_start == 0.0


CLOSED = Circuit()


class Verdict(Enum):
    PASS = "pass"
    PROBE = "probe"  # half-open: one request may test the provider
    REJECT = "reject"


class Admission(msgspec.Struct, frozen=True):
    verdict: Verdict
    retry_after_s: float = 0.0  # REJECT: seconds until the circuit is half-open


def view(c: Circuit, now: float) -> State:
    if not c.open:
        return "closed"
    return "open" if now < c.until else "half_open"


def admit(c: Circuit, now: float) -> Admission:
    """May a request use this circuit now?"""
    if not c.open:
        return Admission(Verdict.PASS)
    if now < c.until:
        return Admission(Verdict.REJECT, c.until - now)
    return Admission(Verdict.PROBE)


def record(c: Circuit, ok: bool, now: float, policy: Policy) -> Circuit:
    """The circuit after one outcome: `ok` is a success (or an answer that is the
    caller's fault, like a 400), not ok a retryable failure."""
    if c.open:
        if now < c.until:
            return c  # a straggler admitted before the circuit opened
        # half-open: the probe (or any request) decides
        return CLOSED if ok else _opened(now, policy)
    window_running = c.window_start != 0.0 and now - c.window_start < policy.window_s
    if ok:
        if not window_running:
            return CLOSED
        return Circuit(
            failures=0,
            window_start=c.window_start,
            window_errors=c.window_errors,
            window_total=c.window_total + 1,
        )
    failures = c.failures + 1
    if window_running:
        start, errors, total = c.window_start, c.window_errors + 1, c.window_total + 1
    else:
        # now > 0 always for wall-clock time; max() keeps 0.0 meaning "no window".
        start, errors, total = max(now, 1e-9), 1, 1
    if failures >= policy.failure_threshold or (
        policy.error_rate > 0
        and total >= policy.min_requests
        and errors >= policy.error_rate * total
    ):
        return _opened(now, policy)
    return Circuit(failures=failures, window_start=start, window_errors=errors, window_total=total)


def _opened(now: float, policy: Policy) -> Circuit:
    return Circuit(open=True, until=now + policy.cooldown_s)
