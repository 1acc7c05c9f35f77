"""One counters call for the limits of several plugins on one request.

rate_limit and budget each check their limits in one all-or-nothing `Counters.check`;
on Redis that is a round trip each, and a round trip costs more than the rest of the
gateway's work on a request. When both run, the first can leave its checks here
(`Gate.defer`, with a callback) and the last sends them with its own (`Gate.check`):
one round trip, and all or nothing across both plugins (a request refused by its
budget takes no rate-limit unit, and the other way round).

The same goes for the settles after the response: the first plugin leaves its
adjustments (`defer_settle`) and the last takes them (`take_settles`) into its own
settle call, so a request costs one round trip before it is forwarded and at most one
after (shared with concurrent requests, core/counters/settle.py).

On in-process counters (`memory.in_process`) `check_now` does the same as a plain call.

The gate lives in `ctx.state[KEY]` for the length of the request. A plugin defers only
when it knows a plugin later in plugins.toml order will check the gate; if a plugin in
between answers or refuses the request, the deferred checks are never sent (nothing was
forwarded, so nothing is counted). Callbacks are called in the order they were deferred,
before the checking plugin reads its own results; a callback may raise (a 429), which
ends the request there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import Adjustment, Check, CheckResult, Counters, RateResult, Reservation
from .memory import MemoryCounters

__all__ = ["KEY", "Deferred", "Gate"]

KEY = "counters.gate"  # the ctx.state key the policy plugins share

# Called with this plugin's results and whether the whole batch was applied.
Deferred = Callable[[tuple[RateResult | Reservation, ...], bool], None]


class Gate:
    __slots__ = ("adjustments", "callbacks", "checks")

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.callbacks: list[tuple[int, int, Deferred]] = []  # (start, end, callback)
        self.adjustments: list[Adjustment] = []

    @staticmethod
    def of(state: dict[str, Any]) -> Gate:
        """The request's gate (made on first use)."""
        gate = state.get(KEY)
        if gate is None:
            gate = state[KEY] = Gate()
        return gate

    def defer(self, checks: Sequence[Check], callback: Deferred) -> None:
        start = len(self.checks)
        self.checks.extend(checks)
        self.callbacks.append((start, len(self.checks), callback))

    async def check(self, counters: Counters, checks: Sequence[Check]) -> CheckResult:
        """Send the deferred checks and `checks` in one call; run the deferred callbacks;
        return the result of `checks` alone (`allowed`: the whole batch was applied)."""
        if not self.callbacks:
            return await counters.check(checks)
        mine = len(self.checks)
        self.checks.extend(checks)
        return self._answer(await counters.check(self.checks), mine)

    def check_now(self, counters: MemoryCounters, checks: Sequence[Check]) -> CheckResult:
        """`check` on in-process counters (`memory.in_process`), as a plain call."""
        if not self.callbacks:
            return counters.check_now(checks)
        mine = len(self.checks)
        self.checks.extend(checks)
        return self._answer(counters.check_now(self.checks), mine)

    def _answer(self, result: CheckResult, mine: int) -> CheckResult:
        """Run the deferred callbacks on their part of `result`; the part from `mine` on."""
        callbacks, self.callbacks, self.checks = self.callbacks, [], []
        for start, end, callback in callbacks:
            callback(result.results[start:end], result.allowed)
        return CheckResult(result.allowed, result.results[mine:])

    def defer_settle(self, adjustments: Sequence[Adjustment]) -> None:
        """Leave settles for the plugin that settles last on this request."""
        self.adjustments.extend(adjustments)

    def take_settles(self) -> list[Adjustment]:
        """The settles left here (emptied): put them first in your own settle call."""
        adjustments, self.adjustments = self.adjustments, []
        return adjustments
