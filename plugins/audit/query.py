"""Reading the audit log back: filtered pages for `/admin/audit`, every matching record
for `interlock audit export`, and `verify`, which walks each chain and reports the first
link that does not hold.

Reads only, parameters only; pages by keyset (ts, chain_id, seq), so an export of
millions of records never holds more than one page and never skips or repeats one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from interlock.core.store import Row, Store

from .record import CONTENT, chain_hash
from .schema import SELECT

__all__ = ["Broken", "Filters", "Verified", "export", "page", "verify"]


class Filters(NamedTuple):
    tenant: str | None = None
    since: str | None = None  # stored time format (record.parse_time), inclusive
    until: str | None = None  # exclusive
    request_id: str | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.tenant is not None:
            clauses.append("tenant = ?")
            params.append(self.tenant)
        if self.since is not None:
            clauses.append("ts >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("ts < ?")
            params.append(self.until)
        if self.request_id is not None:
            clauses.append("request_id = ?")
            params.append(self.request_id)
        return clauses, params


async def page(store: Store, filters: Filters, limit: int, *, newest_first: bool) -> list[Row]:
    clauses, params = filters.where()
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    order = "DESC" if newest_first else "ASC"
    sql = f"{SELECT}{where} ORDER BY ts {order}, chain_id {order}, seq {order} LIMIT ?"
    return await store.fetchall(sql, (*params, limit))


async def export(store: Store, filters: Filters, batch: int = 1000) -> AsyncIterator[Row]:
    """Every matching record, oldest first, one page of `batch` at a time."""
    clauses, params = filters.where()
    after: tuple[str, str, int] | None = None
    while True:
        extra = list(clauses)
        args = list(params)
        if after is not None:
            extra.append("(ts > ? OR (ts = ? AND (chain_id > ? OR (chain_id = ? AND seq > ?))))")
            ts, chain, seq = after
            args += [ts, ts, chain, chain, seq]
        where = f" WHERE {' AND '.join(extra)}" if extra else ""
        rows = await store.fetchall(
            f"{SELECT}{where} ORDER BY ts, chain_id, seq LIMIT ?", (*args, batch)
        )
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        last = rows[-1]
        after = (last[2], last[0], last[1])


class Broken(NamedTuple):
    chain_id: str
    seq: int
    request_id: str | None
    reason: str


class Verified(NamedTuple):
    records: int
    chains: int
    broken: Broken | None


_CHAIN = "SELECT chain_id, first_seq, first_prev, last_seq, last_hash FROM audit_chains"


async def verify(store: Store, batch: int = 1000) -> Verified:
    """Recompute every record's hash and link, chain by chain, in sequence order; stop at
    the first that fails: an edited record (its hash), a removed or inserted one (a gap
    in the sequence, a prev_hash that is not the previous hash), records removed from
    the end (the chain's recorded last record is missing) or a chain nobody registered.
    Retention removes a chain's oldest records and moves its recorded start with them."""
    chains = {row[0]: row for row in await store.fetchall(_CHAIN + " ORDER BY chain_id")}
    records = 0
    for (chain_id,) in await store.fetchall("SELECT DISTINCT chain_id FROM audit_log"):
        if chain_id not in chains:
            return Verified(records, len(chains), Broken(chain_id, 0, None, "unregistered chain"))
    for chain_id, first_seq, first_prev, last_seq, last_hash in chains.values():
        expected, prev = first_seq, first_prev
        after = first_seq - 1
        while True:
            rows = await store.fetchall(
                f"{SELECT} WHERE chain_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (chain_id, after, batch),
            )
            for row in rows:
                broken = _check(row, expected, prev)
                if broken is not None:
                    return Verified(records, len(chains), broken)
                records += 1
                expected, prev = row[1] + 1, row[-1]
            if len(rows) < batch:
                break
            after = rows[-1][1]
        if expected - 1 < last_seq or (last_seq >= first_seq and prev != last_hash):
            reason = (
                f"records {expected} to {last_seq} are missing from the end"
                if expected - 1 < last_seq
                else "the last record is not the one the chain recorded"
            )
            return Verified(records, len(chains), Broken(chain_id, expected, None, reason))
    return Verified(records, len(chains), None)


def _check(row: Row, expected: int, prev: str) -> Broken | None:
    chain_id, seq = row[0], row[1]
    request_id = row[3]
    if seq != expected:
        return Broken(chain_id, expected, None, f"record {expected} is missing (next is {seq})")
    if row[-2] != prev:
        return Broken(chain_id, seq, request_id, "prev_hash does not link to the record before")
    content = row[2 : 2 + len(CONTENT)]
    if chain_hash(prev, chain_id, seq, content) != row[-1]:
        return Broken(chain_id, seq, request_id, "the record was changed after it was written")
    return None
