"""structlog set up for a gateway: one JSON line per request, keys never written, and
no write on the event loop.

The last processor before rendering is `Redactor`: it blanks fields whose names say they
hold credentials and replaces every configured secret (provider keys, the master key)
wherever it appears in a value, so a key cannot reach a log line even by accident.
Rendered lines go to a `BackgroundWriter`: the request path only enqueues bytes, and a
thread writes them, so a slow log consumer (a full pipe) never stalls requests.

The one line per request goes through `LogSetup.request`, which renders the same JSON
bytes as the processor chain without structlog's per-call machinery (measured: ~45 µs
of a ~190 µs request through the chain, ~5 µs this way; bench/README.md) while the
configuration is still the JSON one made here; otherwise (console format, a test's
`capture_logs`) it is an ordinary `logger.info`.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import msgspec
import structlog

__all__ = [
    "BackgroundWriter",
    "JsonLineFormatter",
    "LogSetup",
    "Redactor",
    "configure_logging",
    "get_logger",
    "json_stdlib_handler",
]

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

    def scrub_flat(self, event: dict[str, Any]) -> bool:
        """The fast path of `__call__` for an event of plain values under harmless keys:
        replaces secrets in its strings and returns True; False when it needs the full
        treatment (a sensitive key name, or a nested value)."""
        if not _SENSITIVE_FIELDS.isdisjoint(event):
            return False
        secrets = self.secrets
        for key, value in event.items():
            cls = value.__class__
            if cls is str:
                for secret in secrets:
                    if secret in value:
                        value = value.replace(secret, "[redacted]")
                        event[key] = value
            elif cls is dict or cls is list or cls is tuple:
                return False
        return True

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if key.lower() in _SENSITIVE_FIELDS:
                event[key] = "[redacted]"
            elif isinstance(value, str | dict | list | tuple):
                event[key] = self._clean(value)
        return event


class BackgroundWriter:
    """A file for structlog's `BytesLogger` whose `write` only enqueues.

    One daemon thread writes queued lines in batches and flushes when the queue runs
    dry. After the first line of a batch it lingers `linger_s` so a burst gathers: under
    load that is one wake-up and one write per batch instead of one per request (the
    wake-ups alone showed as ~3% of a busy gateway's CPU). `drain()` blocks until
    everything queued so far is written (at shutdown, and in tests that read output).
    """

    def __init__(self, stream: Any, linger_s: float = 0.01) -> None:
        self._stream = stream
        self._linger_s = linger_s
        self._queue: queue.SimpleQueue[bytes | threading.Event | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="interlock-log", daemon=True)
        self._thread.start()
        atexit.register(self.drain)

    def write(self, data: bytes) -> None:
        if self._closed:  # after close: a rare line at exit is written in place
            self._write([data])
            return
        self._queue.put(data)

    def flush(self) -> None:
        """Called by the logger after every line: nothing to do, the thread flushes."""

    def drain(self, timeout: float = 5.0) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        """Write what is queued and stop the thread (at the gateway's shutdown)."""
        if not self._closed:
            self.drain()
            self._closed = True
            self._queue.put(None)
            atexit.unregister(self.drain)

    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            item = get()
            if item is None:
                return
            if self._linger_s and isinstance(item, bytes):
                time.sleep(self._linger_s)  # this thread only: let the burst gather
            batch: list[bytes] = []
            while True:
                if isinstance(item, threading.Event):
                    self._write(batch)
                    batch = []
                    item.set()
                else:
                    batch.append(item)
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._write(batch)
                    return
            self._write(batch)

    def _write(self, batch: list[bytes]) -> None:
        if not batch:
            return
        try:
            self._stream.write(b"".join(batch))
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stdout closed or gone: logging must never take the gateway down


class LogSetup:
    """What `configure_logging` made: the redactor (to add secrets), the writer, and the
    fast path for the request line (`processors`, `render`, `wrapper`: what must still be
    structlog's configuration for the fast path to write the same bytes)."""

    def __init__(
        self,
        redactor: Redactor,
        writer: BackgroundWriter,
        *,
        encoder: msgspec.json.Encoder | None = None,
        processors: list[Any] | None = None,
        wrapper: Any = None,
    ) -> None:
        self.redactor = redactor
        self.writer = writer
        self._encode = encoder.encode if encoder is not None else None
        self._processors = processors
        self._render = processors[-1] if processors else None
        self._wrapper = wrapper
        self._second = 0
        self._second_text = ""

    def _timestamp(self) -> str:
        """What TimeStamper(fmt="iso", utc=True) writes: one strftime per second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1_000_000):06d}Z"

    def request(self, logger: Any, fields: dict[str, Any], level: str = "info") -> None:
        """`logger.info("request", **fields)` (or `.warning` for a 5xx): the same bytes
        for a fraction of the cost."""
        if self._encode is not None:
            config = structlog.get_config()
            processors: list[Any] = config["processors"]
            if (
                processors is self._processors
                and processors[-1] is self._render  # capture_logs() edits the list in place
                and config["wrapper_class"] is self._wrapper
                and self.redactor.scrub_flat(fields)
            ):
                fields["event"] = "request"
                fields["level"] = level
                fields["timestamp"] = self._timestamp()
                self.writer.write(self._encode(fields) + b"\n")
                return
        getattr(logger, level)("request", **fields)

    def drain(self) -> None:
        self.writer.drain()

    def close(self) -> None:
        self.writer.close()


def _render_json(encoder: msgspec.json.Encoder) -> Any:
    def render(logger: Any, method: str, event: MutableMapping[str, Any]) -> bytes:
        return encoder.encode(event)

    return render


def configure_logging(
    fmt: str = "json", level: str = "info", redactor: Redactor | None = None, stream: Any = None
) -> LogSetup:
    """Configure structlog once per process; lines go to `stream` (stdout) off the loop."""
    redactor = redactor or Redactor()
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    wrapper = structlog.make_filtering_bound_logger(_LEVELS[level])
    encoder: msgspec.json.Encoder | None = None
    if fmt == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        processors.append(lambda logger, method, line: line.encode("utf-8", "replace"))
    else:
        encoder = msgspec.json.Encoder(enc_hook=repr)
        processors.append(_render_json(encoder))
    writer = BackgroundWriter(stream or sys.stdout.buffer)
    structlog.configure(
        processors=processors,
        wrapper_class=wrapper,
        logger_factory=structlog.BytesLoggerFactory(writer),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    fast = encoder is not None and _LEVELS[level] <= logging.INFO
    return LogSetup(
        redactor,
        writer,
        encoder=encoder if fast else None,
        processors=processors if fast else None,
        wrapper=wrapper,
    )


def get_logger(name: str = "interlock") -> Any:
    return structlog.get_logger(name)


class JsonLineFormatter(logging.Formatter):
    """The servers' own log records (hypercorn's, uvicorn's) as JSON lines shaped like
    ours, so `--log-format json` means every line on the output is JSON."""

    _encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs * 1000):06d}Z",
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return self._encode(event).decode()


def json_stdlib_handler(stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    return handler
