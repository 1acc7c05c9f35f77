"""`?` placeholders (SQLite's, how every statement is written) into PostgreSQL's `$1..$n`.

A `?` inside a single-quoted literal, a double-quoted identifier, a `--` line comment or
a `/* */` comment is left alone, as SQLite would; every other `?` is a placeholder.
Dollar-quoted strings and PostgreSQL's JSONB `?` operators are not portable SQL and are
not supported. Each distinct statement is rewritten once and cached.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["numbered"]


@lru_cache(maxsize=2048)
def numbered(sql: str) -> str:
    if "?" not in sql:
        return sql
    out: list[str] = []
    count = 0
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = _closing(sql, i + 1, ch)
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            count += 1
            out.append(f"${count}")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _closing(sql: str, start: int, quote: str) -> int:
    """The index just past the quote closing the one before `start` ('' and "" escape)."""
    i = start
    while True:
        j = sql.find(quote, i)
        if j < 0:
            return len(sql)
        if sql.startswith(quote * 2, j):
            i = j + 2
            continue
        return j + 1
