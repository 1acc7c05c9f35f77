"""`interlock tenants ...` and `interlock keys ...`: tenants and keys without a server.

The commands work on the store plugins.toml names (`--config`, else $INTERLOCK_CONFIG,
else ./plugins.toml, else the default SQLite file), apply tenant_auth's migrations
first, and go through the same `Directory` and the same msgspec types as the admin
API, so both see the same tenants and refuse the same input. `keys create` prints the
key alone on stdout (for `KEY=$(interlock keys create ...)`), once; everything else
goes to stderr or is a table (or JSON with `--json`).

Registered through the `interlock.commands` entry point (core/cli.py calls `register`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from interlock.core import GatewayError
from interlock.core.config import Config, load_config
from interlock.core.store import open_store

from .admin import validation_error
from .directory import Directory
from .models import KeyCreate, KeyInfo, Tenant, TenantCreate
from .schema import MIGRATIONS

__all__ = ["demo", "register"]

T = TypeVar("T")
DEMO_TENANT = "demo"
# The admin API's field names as the CLI spells them, for error messages.
_FLAGS = {
    "name": "NAME",
    "monthly_budget_usd": "--budget",
    "budget_usd": "--budget",
    "rpm": "--rpm",
    "tpm": "--tpm",
    "models": "--models",
    "provider_keys": "--provider-key",
    "tenant": "--tenant",
    "expires_at": "--expires",
}
_encode = msgspec.json.Encoder().encode


class CliError(Exception):
    """A refusal to print as one line (exit status 1)."""


def register(sub: Any) -> None:
    """Add `tenants` and `keys` to the `interlock` command's subparsers."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", help="plugins.toml naming the store (default as `serve`)")

    tenants = sub.add_parser("tenants", help="manage tenants (tenant_auth)")
    tsub = tenants.add_subparsers(dest="tenants_command", required=True)
    create = tsub.add_parser("create", help="create a tenant", parents=[config])
    create.add_argument("name")
    create.add_argument("--budget", type=float, metavar="USD", help="monthly budget in USD")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--models", metavar="A,B", help="allowed models (default: all)")
    create.add_argument(
        "--provider-key",
        action="append",
        default=[],
        metavar="PROVIDER=env:NAME",
        help="the tenant's own key for a provider (repeatable)",
    )
    create.set_defaults(run=_command(_tenants_create))
    listing = tsub.add_parser("list", help="list tenants", parents=[config])
    listing.add_argument("--json", action="store_true", help="one JSON document per line")
    listing.set_defaults(run=_command(_tenants_list))
    delete = tsub.add_parser("delete", help="delete a tenant and its keys", parents=[config])
    delete.add_argument("name")
    delete.set_defaults(run=_command(_tenants_delete))

    keys = sub.add_parser("keys", help="manage virtual keys (tenant_auth)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    kcreate = ksub.add_parser("create", help="create a key (printed once)", parents=[config])
    kcreate.add_argument("--tenant", required=True)
    kcreate.add_argument(
        "--expires", metavar="DATE", help="YYYY-MM-DD (00:00 UTC) or an ISO 8601 time"
    )
    kcreate.add_argument("--name", help="a label for the key")
    kcreate.add_argument("--budget", type=float, metavar="USD", help="the key's own budget")
    kcreate.add_argument("--rpm", type=int)
    kcreate.add_argument("--tpm", type=int)
    kcreate.set_defaults(run=_command(_keys_create))
    klist = ksub.add_parser("list", help="list keys (never the keys themselves)", parents=[config])
    klist.add_argument("--tenant")
    klist.add_argument("--json", action="store_true", help="one JSON document per line")
    klist.set_defaults(run=_command(_keys_list))
    revoke = ksub.add_parser("revoke", help="revoke a key by its id", parents=[config])
    revoke.add_argument("id")
    revoke.set_defaults(run=_command(_keys_revoke))


Action = Callable[[Directory, argparse.Namespace], Awaitable[None]]


def _command(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = load_config(args.config)
        try:
            asyncio.run(_with_directory(config, lambda d: action(d, args)))
        except CliError as exc:
            print(f"interlock: {exc}", file=sys.stderr)
            return 1
        except GatewayError as exc:
            print(f"interlock: {_flagged(exc)}", file=sys.stderr)
            return 1
        return 0

    return run


async def _with_directory(config: Config, work: Callable[[Directory], Awaitable[T]]) -> T:
    store = await open_store(config.store.url)
    try:
        await store.migrate("tenant_auth", MIGRATIONS)
        return await work(Directory(store))
    finally:
        await store.close()


def _flagged(exc: GatewayError) -> str:
    """The error with the admin API's field name replaced by the CLI's flag."""
    if exc.param and exc.message.startswith(f"{exc.param}:"):
        flag = _FLAGS.get(exc.param, exc.param)
        return f"{flag}:{exc.message[len(exc.param) + 1 :]}"
    return exc.message


def _convert(data: dict[str, Any], type_: type[T]) -> T:
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


def _provider_keys(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        provider, sep, ref = pair.partition("=")
        if not sep:
            raise CliError(f"--provider-key: expected PROVIDER=env:NAME, got '{pair}'")
        out[provider.strip()] = ref.strip()
    return out


def _expires(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--expires: not a date (YYYY-MM-DD) or ISO 8601 time: '{text}'") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _optional(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# -- tenants -------------------------------------------------------------------------------
async def _tenants_create(directory: Directory, args: argparse.Namespace) -> None:
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else []
    spec = _convert(
        _optional(
            name=args.name,
            monthly_budget_usd=args.budget,
            rpm=args.rpm,
            tpm=args.tpm,
            models=models,
            provider_keys=_provider_keys(args.provider_key),
        ),
        TenantCreate,
    )
    tenant = await directory.create_tenant(spec)
    print(f"interlock: tenant '{tenant.name}' created", file=sys.stderr)


async def _all(fetch: Callable[[str], Awaitable[list[T]]], last: Callable[[T], str]) -> list[T]:
    out: list[T] = []
    after = ""
    while True:
        page = await fetch(after)
        out += page
        if len(page) < _PAGE:
            return out
        after = last(page[-1])


_PAGE = 1000


async def _tenants_list(directory: Directory, args: argparse.Namespace) -> None:
    tenants = await _all(lambda after: directory.list_tenants(_PAGE, after), lambda t: t.name)
    if args.json:
        for tenant in tenants:
            print(_encode(tenant).decode())
        return
    _table(
        ["NAME", "BUDGET_USD", "RPM", "TPM", "MODELS", "PROVIDER_KEYS"],
        [_tenant_row(t) for t in tenants],
    )


def _tenant_row(t: Tenant) -> list[str]:
    return [
        t.name,
        _text(t.monthly_budget_usd),
        _text(t.rpm),
        _text(t.tpm),
        ",".join(t.models) or "all",
        ",".join(sorted(t.provider_keys)) or "-",
    ]


async def _tenants_delete(directory: Directory, args: argparse.Namespace) -> None:
    if not await directory.delete_tenant(args.name):
        raise CliError(f"no tenant named '{args.name}'")
    print(f"interlock: tenant '{args.name}' and its keys deleted", file=sys.stderr)


# -- keys ------------------------------------------------------------------------------------
async def _keys_create(directory: Directory, args: argparse.Namespace) -> None:
    spec = _convert(
        _optional(
            tenant=args.tenant,
            name=args.name,
            budget_usd=args.budget,
            rpm=args.rpm,
            tpm=args.tpm,
        ),
        KeyCreate,
    )
    expires = _expires(args.expires)
    if expires is not None:
        spec = msgspec.structs.replace(spec, expires_at=expires)
    created = await directory.create_key(spec)
    until = f", expires {created.expires_at.isoformat()}" if created.expires_at else ""
    print(
        f"interlock: key {created.id} ({created.prefix}...) for tenant '{created.tenant}'"
        f"{until}; it is shown once, below:",
        file=sys.stderr,
    )
    print(created.key, flush=True)


async def _keys_list(directory: Directory, args: argparse.Namespace) -> None:
    tenant = args.tenant
    if tenant is not None and await directory.get_tenant(tenant) is None:
        raise CliError(f"no tenant named '{tenant}'")
    keys = await _all(lambda after: directory.list_keys(tenant, _PAGE, after), lambda k: k.id)
    if args.json:
        for key in keys:
            print(_encode(key).decode())
        return
    _table(
        ["ID", "PREFIX", "TENANT", "STATUS", "EXPIRES", "NAME"],
        [_key_row(k) for k in keys],
    )


def _key_row(k: KeyInfo) -> list[str]:
    expires = k.expires_at.strftime("%Y-%m-%d %H:%M") if k.expires_at else "-"
    return [k.id, k.prefix + "...", k.tenant, k.status, expires, k.name or "-"]


async def _keys_revoke(directory: Directory, args: argparse.Namespace) -> None:
    if not await directory.revoke_key(args.id):
        raise CliError(f"no key with id '{args.id}'")
    print(f"interlock: key {args.id} revoked", file=sys.stderr)


# -- serve --demo ----------------------------------------------------------------------------
def demo(config: Config) -> None:
    """On the first `serve --demo`: a tenant `demo` and a key for it, printed once (on
    stderr with serve's other lines; a JSON line when the log format is JSON)."""
    from interlock.core.cli import say

    async def work(directory: Directory) -> None:
        if await directory.get_tenant(DEMO_TENANT) is not None:
            say(
                config,
                "demo_exists",
                f"demo: tenant '{DEMO_TENANT}' exists (its key was printed when it was "
                f"made; another: interlock keys create --tenant {DEMO_TENANT})",
            )
            return
        await directory.create_tenant(TenantCreate(name=DEMO_TENANT))
        created = await directory.create_key(KeyCreate(tenant=DEMO_TENANT, name="demo"))
        say(
            config,
            "demo_key",
            f"demo: tenant '{DEMO_TENANT}' and key {created.id} created; every /v1 request "
            f"needs this key, shown once: {created.key}",
            level="warning",
            tenant=DEMO_TENANT,
            key_id=created.id,
        )

    asyncio.run(_with_directory(config, work))


# -- output ------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
