"""`interlock audit export` and `interlock audit verify`: the audit log for an auditor.

    interlock audit export --since 2026-11-01 [--until 2026-12-01] [--tenant T]
                           [--format jsonl|csv] [--output FILE] [--config plugins.toml]
    interlock audit verify [--config plugins.toml]

Both open the store named by the configuration's `[store] url` (the same file or
database the gateway writes, which may keep running). export writes oldest first, a page
at a time; verify exits 1 and names the first broken link, 0 when every chain holds.

Registered through the `interlock.commands` entry point (core/cli.py calls `register`).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
from typing import IO, Any

import msgspec

from interlock.core import StoreError
from interlock.core.config import ConfigError, load_config
from interlock.core.store import Store, open_store

from .query import Filters, export, verify
from .record import COLUMNS, parse_time
from .schema import MIGRATIONS
from .writer import as_document

__all__ = ["register"]

_encode = msgspec.json.Encoder().encode


def register(sub: Any) -> None:
    """Add `audit export` and `audit verify` to the `interlock` command's subparsers
    (the `interlock.commands` entry point)."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        help="plugins.toml naming the store (default: $INTERLOCK_CONFIG, ./plugins.toml)",
    )
    audit = sub.add_parser("audit", help="the audit log: export, verify (audit plugin)")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    exp = asub.add_parser(
        "export", help="write audit records as JSON lines or CSV", parents=[config]
    )
    exp.add_argument("--since", required=True, help="a date (2026-11-25) or ISO 8601 time")
    exp.add_argument("--until", help="exclusive; a date or ISO 8601 time")
    exp.add_argument("--tenant")
    exp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    exp.add_argument("--output", help="a file (default: standard output)")
    exp.set_defaults(run=_command)
    ver = asub.add_parser(
        "verify", help="check every record's hash and its chain", parents=[config]
    )
    ver.set_defaults(run=_command)


def _command(args: argparse.Namespace) -> int:
    """Run `audit export` or `audit verify`; ConfigError goes to the core (exit 2)."""
    url = load_config(args.config).store.url
    path = url.removeprefix("sqlite://")
    if url.startswith("sqlite://") and path[1:] and not os.path.exists(path[1:]):
        raise ConfigError(f"[store] key `url`: no database at {path[1:]} (check --config)")
    try:
        return _run(args, url)
    except StoreError as exc:
        print(f"interlock audit: the store failed: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, url: str) -> int:
    if args.audit_command == "verify":
        return asyncio.run(_verify(url))
    try:
        filters = Filters(
            tenant=args.tenant,
            since=parse_time(args.since),
            until=parse_time(args.until) if args.until else None,
        )
    except ValueError:
        raise ConfigError(
            "interlock audit export: --since and --until are dates (2026-11-25) or ISO 8601 times"
        ) from None
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            return asyncio.run(_export(url, filters, args.format, out))
    return asyncio.run(_export(url, filters, args.format, sys.stdout))


async def _open(url: str) -> Store:
    """The store, with the audit tables (empty when the gateway never wrote any)."""
    store = await open_store(url)
    try:
        await store.migrate("audit", MIGRATIONS)
    except BaseException:
        await store.close()
        raise
    return store


async def _export(url: str, filters: Filters, fmt: str, out: IO[str]) -> int:
    store = await _open(url)
    count = 0
    try:
        writer: Any = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        async for row in export(store, filters):
            if writer is not None:
                writer.writerow(["" if v is None else v for v in row])
            else:
                out.write(_encode(as_document(row)).decode() + "\n")
            count += 1
    finally:
        await store.close()
    print(f"interlock audit: {count} record(s) exported", file=sys.stderr)
    return 0


async def _verify(url: str) -> int:
    store = await _open(url)
    try:
        result = await verify(store)
    finally:
        await store.close()
    if result.broken is None:
        print(f"ok: {result.records} record(s) in {result.chains} chain(s); every link holds")
        return 0
    b = result.broken
    where = f"chain {b.chain_id}, record {b.seq}"
    if b.request_id:
        where += f" (request {b.request_id})"
    print(
        f"BROKEN: {where}: {b.reason}; {result.records} record(s) verified before it",
    )
    return 1
