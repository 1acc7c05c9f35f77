"""The in-process key cache: what a key hash resolved to, for a short time.

Known keys and unknown hashes live in separate bounded maps, so a flood of made-up keys
can only push out other made-up keys, never a real client's entry. An entry is trusted
for its TTL (monotonic time, an injectable clock): a key revoked in the store stops
working on this replica at most `ttl_s` after the revocation. When a map is full the
oldest entry goes (insertion order).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["KeyCache"]

V = TypeVar("V")


class KeyCache(Generic[V]):
    def __init__(
        self,
        ttl_s: float,
        negative_ttl_s: float,
        size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.size = size
        self.clock = clock
        self._known: dict[str, tuple[float, V]] = {}
        self._unknown: dict[str, float] = {}

    def get(self, digest: str) -> tuple[bool, V | None]:
        """`(True, value)` for a fresh known key, `(True, None)` for a fresh unknown
        one, `(False, None)` when the store must be asked."""
        now = self.clock()
        known = self._known.get(digest)
        if known is not None:
            if known[0] > now:
                return True, known[1]
            del self._known[digest]
        until = self._unknown.get(digest)
        if until is not None:
            if until > now:
                return True, None
            del self._unknown[digest]
        return False, None

    def put(self, digest: str, value: V | None) -> None:
        """Remember what the store said: a value, or None for "no such live key"."""
        if value is None:
            self._unknown.pop(digest, None)
            self._known.pop(digest, None)
            if self.negative_ttl_s > 0:
                _bounded_put(self._unknown, digest, self.clock() + self.negative_ttl_s, self.size)
        else:
            self._unknown.pop(digest, None)
            if self.ttl_s > 0:
                _bounded_put(self._known, digest, (self.clock() + self.ttl_s, value), self.size)

    def clear(self) -> None:
        self._known.clear()
        self._unknown.clear()

    def __len__(self) -> int:
        return len(self._known) + len(self._unknown)


K = TypeVar("K")
T = TypeVar("T")


def _bounded_put(entries: dict[K, T], key: K, value: T, size: int) -> None:
    entries.pop(key, None)
    while len(entries) >= size:
        del entries[next(iter(entries))]
    entries[key] = value
