"""Durations the way OpenAI writes them in `x-ratelimit-reset-*`: `20ms`, `1s`, `6m0s`.

Rounded up to the millisecond, so a client that waits the time it reads is never early.
"""

from __future__ import annotations

import math

__all__ = ["duration"]


def duration(seconds: float) -> str:
    """`0s`, `250ms`, `1.5s`, `6m0s`, `1h2m3s` (never less than the true duration)."""
    ms = math.ceil(seconds * 1000 - 1e-6) if seconds > 0 else 0  # float noise is not a ms
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms // 1000}" if ms % 1000 == 0 else f"{ms / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
