"""The order in which a model's deployments are tried: the balancing strategies.

A deployment is a provider that lists the model by name in plugins.toml (a `"*"`
provider serves a model only when no provider lists it). The first deployment of the
order serves the request; the others follow as fallbacks, so a request never fails for
want of trying a sibling.

- `weighted`: smooth weighted round robin (nginx's algorithm): over any run of requests
  each deployment's share is its weight's share, interleaved rather than in bursts, and
  deterministic (no random draw), so a test can count it exactly.
- `latency`: lowest exponentially weighted moving average of observed latency first
  (each successful attempt's latency, learned in `on_attempt`); a deployment never tried
  comes first, so every one gets measured.
- `least_busy`: fewest requests in flight in this process first (counted from the
  route until `post_response`), ties taken in turn.

All state is in process and touched only from the event loop without awaiting, so it
needs no lock; a replica balances its own traffic. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping

from interlock.core import Candidate

__all__ = ["Balancer"]

Key = tuple[str, str]
_MAX_KEYS = 10_000  # latency samples are keyed by what was attempted: keep them bounded


class Balancer:
    __slots__ = ("_current", "_inflight", "_latency", "_turn", "alpha", "strategy", "weights")

    def __init__(self, strategy: str, weights: Mapping[str, float], alpha: float = 0.3) -> None:
        self.strategy = strategy
        self.weights = weights
        self.alpha = alpha
        self._current: dict[str, list[float]] = {}  # weighted: per model, per deployment
        self._latency: dict[Key, float] = {}  # latency: EWMA in ms per (provider, model)
        self._inflight: dict[Key, int] = {}  # least_busy: requests in flight
        self._turn: dict[str, int] = {}  # least_busy: whose turn on a tie

    def weight(self, candidate: Candidate) -> float:
        """`deployment_weights["provider/model"]`, else `["provider"]`, else 1."""
        weights = self.weights
        if not weights:
            return 1.0
        found = weights.get(f"{candidate.provider}/{candidate.model}")
        if found is None:
            found = weights.get(candidate.provider, 1.0)
        return found

    def order(self, model: str, deployments: tuple[Candidate, ...]) -> list[Candidate]:
        """The deployments in the order to try them (the first one serves); updates the
        round-robin state. `deployments` is the same tuple for a model every time."""
        if len(deployments) < 2:
            return list(deployments)
        if self.strategy == "latency":
            latency = self._latency
            return sorted(deployments, key=lambda c: latency.get((c.provider, c.model), -1.0))
        if self.strategy == "least_busy":
            inflight = self._inflight
            n = len(deployments)
            turn = self._turn.get(model, 0)
            self._turn[model] = (turn + 1) % n
            ranked = sorted(
                range(n),
                key=lambda i: (
                    inflight.get((deployments[i].provider, deployments[i].model), 0),
                    (i - turn) % n,
                ),
            )
            return [deployments[i] for i in ranked]
        first = self._smooth(model, deployments)
        rest = sorted(
            (c for i, c in enumerate(deployments) if i != first), key=lambda c: -self.weight(c)
        )
        return [deployments[first], *rest]

    def _smooth(self, model: str, deployments: tuple[Candidate, ...]) -> int:
        """One step of smooth weighted round robin: every current weight grows by its
        weight, the largest is chosen and pays back the total."""
        current = self._current.get(model)
        if current is None or len(current) != len(deployments):
            current = self._current[model] = [0.0] * len(deployments)
        total = 0.0
        best = 0
        for i, candidate in enumerate(deployments):
            w = self.weight(candidate)
            total += w
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= total
        return best

    # -- what requests teach -----------------------------------------------------------------
    def observe(self, provider: str, model: str, latency_ms: float) -> None:
        """A successful attempt's latency, folded into the deployment's moving average."""
        key = (provider, model)
        previous = self._latency.get(key)
        if previous is None:
            if len(self._latency) >= _MAX_KEYS:
                return
            self._latency[key] = latency_ms
        else:
            self._latency[key] = previous + self.alpha * (latency_ms - previous)

    def latency(self, provider: str, model: str) -> float | None:
        return self._latency.get((provider, model))

    def acquire(self, candidate: Candidate) -> None:
        key = (candidate.provider, candidate.model)
        self._inflight[key] = self._inflight.get(key, 0) + 1

    def release(self, candidate: Candidate) -> None:
        key = (candidate.provider, candidate.model)
        left = self._inflight.get(key, 0) - 1
        if left > 0:
            self._inflight[key] = left
        else:
            self._inflight.pop(key, None)

    def inflight(self, provider: str, model: str) -> int:
        return self._inflight.get((provider, model), 0)
