"""The circuit breaker's state machine, driven by hypothesis through random orders of
outcomes and clock moves: the bugs of a breaker hide in sequences nobody writes by hand."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interlock.plugins.failover.breaker import (
    CLOSED,
    Circuit,
    Policy,
    Verdict,
    admit,
    record,
    view,
)

policies = st.builds(
    Policy,
    failure_threshold=st.integers(1, 6),
    error_rate=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    min_requests=st.integers(1, 12),
    window_s=st.floats(1.0, 120.0),
    cooldown_s=st.floats(0.5, 60.0),
)


class BreakerMachine(RuleBasedStateMachine):
    """A model alongside the real machine: it tracks only what the properties need
    (the failure streak since the last success, the state seen before each step)."""

    @initialize(policy=policies, start=st.floats(1.0, 1e9))
    def start(self, policy: Policy, start: float) -> None:
        self.policy = policy
        self.now = start
        self.circuit = CLOSED
        self.streak = 0  # failures in a row while closed (the model's own count)

    @rule(dt=st.floats(0.0, 200.0))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(ok=st.booleans())
    def outcome(self, ok: bool) -> None:
        before = self.circuit
        was = view(before, self.now)
        after = record(before, ok, self.now, self.policy)
        now_state = view(after, self.now)
        if was == "open":
            # Stragglers admitted before it opened change nothing.
            assert after == before
        elif was == "half_open":
            if ok:
                assert after == CLOSED
                self.streak = 0
            else:
                assert now_state == "open"
                assert after.until == self.now + self.policy.cooldown_s
        else:  # closed
            if ok:
                assert now_state == "closed"  # a success never opens a circuit
                assert after.failures == 0
                self.streak = 0
            else:
                self.streak += 1
                if self.streak >= self.policy.failure_threshold:
                    assert now_state == "open"  # N failures in a row always open it
                if now_state == "open":
                    assert after.until == self.now + self.policy.cooldown_s
                    if self.streak < self.policy.failure_threshold:
                        assert self.policy.error_rate > 0  # then only the rate rule opens it
                    self.streak = 0
                else:
                    # A failure that leaves it closed is under both thresholds.
                    assert self.streak < self.policy.failure_threshold
                    rate, total = self.policy.error_rate, after.window_total
                    if rate > 0 and total >= self.policy.min_requests:
                        assert after.window_errors < rate * total
        self.circuit = after

    @precondition(lambda self: hasattr(self, "circuit"))
    @invariant()
    def admission_matches_the_state(self) -> None:
        verdict = admit(self.circuit, self.now)
        state = view(self.circuit, self.now)
        if state == "closed":
            assert verdict.verdict is Verdict.PASS
        elif state == "open":
            assert verdict.verdict is Verdict.REJECT
            # (until - now) may exceed the cool-down by the rounding error of now + cooldown
            assert 0 < verdict.retry_after_s <= self.policy.cooldown_s + self.now * 1e-15 + 1e-12
        else:
            assert verdict.verdict is Verdict.PROBE

    @precondition(lambda self: hasattr(self, "circuit"))
    @invariant()
    def counts_are_consistent(self) -> None:
        c = self.circuit
        assert c.failures >= 0
        assert 0 <= c.window_errors <= c.window_total
        if c.open:
            assert c.failures == 0 and c.window_total == 0
            assert c.until <= self.now + self.policy.cooldown_s
        else:
            # (A success may leave the error share over the rate: only a failure opens.)
            assert c.failures < self.policy.failure_threshold
            assert c.failures == self.streak

    @precondition(lambda self: hasattr(self, "circuit"))
    @invariant()
    def stored_form_round_trips(self) -> None:
        stored = msgspec.json.encode(self.circuit)
        assert msgspec.json.decode(stored, type=Circuit) == self.circuit
        if self.circuit == CLOSED:
            assert stored == b"{}"


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase


@given(policy=policies, start=st.floats(1.0, 1e6), pattern=st.lists(st.booleans(), max_size=50))
def test_an_error_rate_over_the_window_opens_the_circuit(
    policy: Policy, start: float, pattern: list[bool]
) -> None:
    """Outcomes all inside one window: the circuit opens exactly when the model's count
    of errors / total first reaches the rate (or the streak the threshold)."""
    c, now = CLOSED, start
    errors = total = streak = 0
    for ok in pattern:
        if view(c, now) != "closed":
            break
        started = errors > 0
        if started or not ok:  # the window begins at the first failure
            total += 1
            errors += 0 if ok else 1
        streak = 0 if ok else streak + 1
        c = record(c, ok, now, policy)
        should_open = not ok and (
            streak >= policy.failure_threshold
            or (
                policy.error_rate > 0
                and total >= policy.min_requests
                and errors >= policy.error_rate * total
            )
        )
        assert (view(c, now) == "open") == should_open
        now += policy.window_s / 100  # 50 steps stay inside one window


def test_the_documented_cycle() -> None:
    policy = Policy(failure_threshold=3, error_rate=0, cooldown_s=30)
    c = CLOSED
    for _ in range(2):
        c = record(c, False, 100.0, policy)
    assert view(c, 100.0) == "closed"
    c = record(c, False, 100.0, policy)
    assert view(c, 100.0) == "open"
    assert admit(c, 110.0).retry_after_s == 20.0
    assert admit(c, 130.0).verdict is Verdict.PROBE
    assert view(record(c, False, 130.0, policy), 130.0) == "open"  # the probe failed
    assert record(c, True, 130.0, policy) == CLOSED  # the probe succeeded


def test_an_expired_window_starts_afresh() -> None:
    policy = Policy(failure_threshold=10, error_rate=0.5, min_requests=2, window_s=10)
    c = record(CLOSED, False, 100.0, policy)
    c = record(c, True, 100.0, policy)
    c = record(c, True, 100.0, policy)  # 1 error in 3
    assert view(c, 105.0) == "closed"
    c = record(c, True, 111.0, policy)  # the window ended: this success clears it
    assert c == CLOSED
    c = record(c, False, 112.0, policy)  # a new window: 1 of 1, but min_requests is 2
    assert view(c, 112.0) == "closed"
    c = record(c, False, 113.0, policy)  # 2 of 2
    assert view(c, 113.0) == "open"
