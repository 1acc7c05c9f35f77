"""What happens to each finding: `redact` ([EMAIL]), `mask` (all but the last four
letters and digits become `*`), `tokenize` (a per-request placeholder such as
[EMAIL_1] that the answer is restored from), `block` (the request is refused), or `off`.

A `Vault` lives for one request: it hands out placeholders (the same value gets the same
placeholder, and a placeholder already written in the request by the user is never
reused) and remembers the values behind them for the way back. Values live only there:
never in a log line, an error, ctx.state's counts or the audit record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from .detectors import TYPES, Finding

__all__ = [
    "ACTIONS",
    "DEFAULT_ACTIONS",
    "LABELS",
    "PLACEHOLDER",
    "Action",
    "Vault",
    "apply",
    "mask",
]

Action = Literal["redact", "mask", "tokenize", "block", "off"]
ACTIONS: tuple[Action, ...] = ("redact", "mask", "tokenize", "block", "off")

# Personal data the user will want to see again in the answer is tokenized; numbers
# whose last digits are enough to talk about are masked; secrets are removed.
DEFAULT_ACTIONS: dict[str, Action] = {
    "email": "tokenize",
    "phone": "tokenize",
    "credit_card": "mask",
    "iban": "mask",
    "ssn": "redact",
    "ip_address": "redact",
    "api_key": "redact",
    "aws_key": "redact",
    "github_token": "redact",
    "jwt": "redact",
    "private_key": "redact",
}
assert set(DEFAULT_ACTIONS) == set(TYPES)

LABELS = {kind: kind.upper() for kind in TYPES}
# What a tokenize placeholder looks like (also what is held back at the end of a chunk).
PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")


def mask(value: str, keep: int = 4) -> str:
    """Every letter and digit but the last `keep` becomes `*`; separators stay, so a
    card still reads `**** **** **** 1111`."""
    left = sum(c.isalnum() for c in value) - keep
    out = []
    for c in value:
        if c.isalnum() and left > 0:
            out.append("*")
            left -= 1
        else:
            out.append(c)
    return "".join(out)


class Vault:
    """One request's placeholders: value -> placeholder and placeholder -> value."""

    __slots__ = ("_counters", "by_placeholder", "by_value", "reserved")

    def __init__(self) -> None:
        self.by_value: dict[tuple[str, str], str] = {}
        self.by_placeholder: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        # Placeholder-shaped text the user wrote: never handed out, never restored.
        self.reserved: set[str] = set()

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        found = self.by_value.get(key)
        if found is not None:
            return found
        n = self._counters.get(kind, 0)
        while True:
            n += 1
            candidate = f"[{LABELS[kind]}_{n}]"
            if candidate not in self.reserved:
                break
        self._counters[kind] = n
        self.by_value[key] = candidate
        self.by_placeholder[candidate] = value
        return candidate

    def __bool__(self) -> bool:
        return bool(self.by_placeholder)


def apply(
    text: str,
    findings: list[Finding],
    actions: Mapping[str, Action],
    vault: Vault | None,
    counts: dict[str, int],
    blocked: list[str],
) -> str:
    """`text` with each finding replaced per its type's action and counted in `counts`;
    the type of a `block` finding is appended to `blocked` (the caller refuses the
    request once every text has been counted). Without a vault, `tokenize` redacts."""
    parts: list[str] = []
    last = 0
    for f in findings:
        action = actions[f.type]
        counts[f.type] = counts.get(f.type, 0) + 1
        if action == "mask":
            replacement = mask(text[f.start : f.end])
        elif action == "tokenize" and vault is not None:
            replacement = vault.placeholder(f.type, text[f.start : f.end])
        else:
            if action == "block":
                blocked.append(f.type)
            replacement = f"[{LABELS[f.type]}]"
        parts.append(text[last : f.start])
        parts.append(replacement)
        last = f.end
    parts.append(text[last:])
    return "".join(parts)
