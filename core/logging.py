"""structlog set up for a gateway: one JSON line per request, keys never written.

The last processor before rendering is `Redactor`: it blanks fields whose names say they
hold credentials and replaces every configured secret (provider keys, the master key)
wherever it appears in a value, so a key cannot reach a log line even by accident.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import msgspec
import structlog

__all__ = ["Redactor", "configure_logging", "get_logger"]

_SENSITIVE_FIELDS = frozenset(
    {
        "authorization",
        "api_key",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "key",
        "password",
        "secret",
        "token",
        "master_key",
        "cookie",
    }
)
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class Redactor:
    """A structlog processor that removes credentials from every event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = {s for s in secrets if s}

    def add(self, secret: str) -> None:
        if secret:
            self.secrets.add(secret)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, "[redacted]")
            return value
        if isinstance(value, dict):
            return {
                k: "[redacted]" if str(k).lower() in _SENSITIVE_FIELDS else self._clean(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if key.lower() in _SENSITIVE_FIELDS:
                event[key] = "[redacted]"
            elif isinstance(value, str | dict | list | tuple):
                event[key] = self._clean(value)
        return event


def _render_json(encoder: msgspec.json.Encoder) -> Any:
    def render(logger: Any, method: str, event: MutableMapping[str, Any]) -> bytes:
        return encoder.encode(event)

    return render


def configure_logging(
    fmt: str = "json", level: str = "info", redactor: Redactor | None = None, stream: Any = None
) -> Redactor:
    """Configure structlog once per process; returns the redactor to add secrets to."""
    redactor = redactor or Redactor()
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    if fmt == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory: Any = structlog.PrintLoggerFactory(stream or sys.stdout)
    else:
        processors.append(_render_json(msgspec.json.Encoder(enc_hook=repr)))
        factory = structlog.BytesLoggerFactory(stream or sys.stdout.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    return redactor


def get_logger(name: str = "interlock") -> Any:
    return structlog.get_logger(name)
