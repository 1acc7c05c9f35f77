"""The SQLite store tries an autocommit statement again when SQLite answers busy without
waiting (a stale WAL snapshot when two gateways share one file), and never inside a
transaction, never for another error, never past the busy timeout."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from interlock.core.store.sqlite import _busy_retried


def _busy(code: int = 517) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database is locked")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


class _Conn:
    """Fails its first `failures` executes with `error`, then answers."""

    def __init__(self, failures: int, error: Exception, in_transaction: bool = False) -> None:
        self.failures = failures
        self.error = error
        self.in_transaction = in_transaction
        self.calls = 0

    def execute(self, sql: str, params: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "cursor"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def _run(conn: _Conn, clock: _Clock) -> Any:
    return _busy_retried(conn, "UPDATE t SET x = 1", (), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [5, 517, 261])  # BUSY, BUSY_SNAPSHOT, BUSY_RECOVERY
def test_a_busy_autocommit_statement_is_run_again_until_it_passes(code: int) -> None:
    conn, clock = _Conn(3, _busy(code)), _Clock()
    assert _run(conn, clock) == "cursor"
    assert conn.calls == 4
    assert clock.pauses == [0.001, 0.002, 0.004]  # growing, short pauses


def test_inside_a_transaction_busy_is_the_callers_to_handle() -> None:
    conn, clock = _Conn(1, _busy(), in_transaction=True), _Clock()
    with pytest.raises(sqlite3.OperationalError):
        _run(conn, clock)
    assert conn.calls == 1


def test_other_errors_are_not_retried() -> None:
    conn, clock = _Conn(1, sqlite3.OperationalError("no such table: t")), _Clock()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _run(conn, clock)
    assert conn.calls == 1
    locked = _Conn(1, _busy(6)), _Clock()  # SQLITE_LOCKED: a conflict on this connection
    with pytest.raises(sqlite3.OperationalError):
        _run(*locked)


def test_a_busy_that_outlasts_the_busy_timeout_fails() -> None:
    conn, clock = _Conn(10**6, _busy()), _Clock()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _run(conn, clock)
    assert 5.0 <= clock.now < 5.1
    assert max(clock.pauses) == 0.05
