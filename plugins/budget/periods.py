"""Budget periods in UTC: a calendar month (the default), an ISO week, a day.

A period has an id that names it in counter keys, ledger rows and messages (`2026-11`,
`2026-W48`, `2026-11-25`) and its bounds as Unix times. `Periods.current(now)` is called
on every request, so the answer is cached until the period ends: one clock read and a
comparison per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

__all__ = ["Period", "PeriodKind", "Periods", "period_at"]

PeriodKind = Literal["monthly", "weekly", "daily"]


class Period(msgspec.Struct, frozen=True):
    kind: PeriodKind
    id: str
    start: float  # Unix time, inclusive
    end: float  # Unix time, exclusive


def period_at(kind: PeriodKind, now: float) -> Period:
    """The period of `kind` that contains the Unix time `now`."""
    dt = datetime.fromtimestamp(now, UTC)
    day = datetime(dt.year, dt.month, dt.day, tzinfo=UTC)
    if kind == "daily":
        return Period(
            kind, day.strftime("%Y-%m-%d"), day.timestamp(), (day + timedelta(days=1)).timestamp()
        )
    if kind == "weekly":
        start = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
        year, week, _ = start.isocalendar()
        return Period(
            kind, f"{year}-W{week:02d}", start.timestamp(), (start + timedelta(days=7)).timestamp()
        )
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return Period(kind, start.strftime("%Y-%m"), start.timestamp(), end.timestamp())


class Periods:
    """The current period of one kind, recomputed only when it has ended."""

    def __init__(self, kind: PeriodKind, clock: Callable[[], float] = time.time) -> None:
        self.kind = kind
        self.clock = clock
        self._current = period_at(kind, clock())

    def current(self, now: float) -> Period:
        """The period containing `now` (a reading of `clock`)."""
        current = self._current
        if not current.start <= now < current.end:
            current = self._current = period_at(self.kind, now)
        return current
