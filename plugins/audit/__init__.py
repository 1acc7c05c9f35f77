"""audit: one tamper-evident record for every request, refused ones included.

`post_response` (which the core runs exactly once per /v1 request, whatever its fate)
turns the finished request into a record (record.py) and hands it to the group-commit
writer (writer.py). With `durable = true`, the default, it waits for the commit, and the
core holds the response's last bytes until then: a client that received the whole answer
knows its record is in the store. Each record is hash-chained to the one before it
(one chain per writing process); `interlock audit verify` finds the first broken link,
`interlock audit export` and `GET /admin/audit` read records back (query.py, admin.py).

Never a key in a record (the key id is an identifier); bodies only with
`store_bodies = true`, and then through pii_redaction's `scrub` when that plugin is on
(bodies.py): a request refused before redaction ran keeps no body at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import msgspec
from starlette.routing import Route

from interlock.core import ConfigError, Plugin, RequestContext, Services, hookimpl
from interlock.core.config import resolve_secret

from .admin import AuditRoute
from .bodies import Captured, capture, record_bodies
from .record import content_of
from .schema import MIGRATIONS
from .writer import Writer

__all__ = ["Audit"]

PII_PLUGIN = "pii_redaction"


class Audit(Plugin):
    name = "audit"
    migrations = MIGRATIONS

    class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
        # Wait for the record's commit before the response completes.
        durable: bool = True
        # Also the request and response bodies (after pii_redaction, when it is on).
        store_bodies: bool = False
        # Append every committed record to this JSON-lines file too ("" = no file).
        jsonl_path: str = ""
        # Delete records older than this many days (0 = keep them all).
        retention_days: float = 0.0
        # Group commit: at most this many records per transaction, and how long the
        # writer waits for more before it commits (0: whatever is queued already).
        batch_max: int = 500
        batch_linger_ms: float = 0.0
        # Records waiting for the writer; when full, a request waits for room ("wait",
        # nothing is lost), or a non-durable one drops its record after full_wait_ms.
        queue_size: int = 10_000
        when_full: Literal["wait", "drop"] = "wait"
        full_wait_ms: float = 50.0
        # For GET /admin/audit, as env:NAME; empty or NAME unset: the route refuses everyone.
        master_key: str = "env:INTERLOCK_MASTER_KEY"
        # At shutdown, how long the writer may take to write what is queued.
        shutdown_timeout_s: float = 10.0

    def __init__(self, config: Config, services: Services) -> None:
        super().__init__(config, services)
        where = f"{services.config.source}: [plugins.{self.name}]"
        for key in ("batch_max", "queue_size"):
            if getattr(config, key) < 1:
                raise ConfigError(f"{where} key `{key}`: must be at least 1")
        jsonl = None
        if config.jsonl_path:
            jsonl = Path(config.jsonl_path)
            if not jsonl.is_absolute():
                jsonl = Path(services.config.base_dir) / jsonl
        self.writer = Writer(
            services.store,
            services.logger,
            queue_size=config.queue_size,
            batch_max=config.batch_max,
            linger_s=config.batch_linger_ms / 1000.0,
            jsonl=jsonl,
            retention_days=config.retention_days,
        )
        if config.master_key and not config.master_key.startswith("env:"):
            raise ConfigError(
                f"{where} key `master_key`: must be an env:NAME reference, never the key"
            )
        secret = resolve_secret(config.master_key, where=f"{where} key `master_key`")
        self._master = secret.reveal() if secret is not None else None
        self.route = AuditRoute(services.store, self._master)
        self.pii_on = any(e.name == PII_PLUGIN and e.enabled for e in services.config.plugins)
        self.full_wait_s = config.full_wait_ms / 1000.0 if config.when_full == "drop" else None

    def secrets(self) -> list[str]:
        """Values the logger must never print."""
        return [self._master] if self._master else []

    # -- lifecycle -----------------------------------------------------------------------
    @hookimpl
    async def startup(self, services: Services) -> None:
        await self.writer.open()
        self.writer.started(services.spawn(self.writer.run(), name="audit-writer"))

    @hookimpl
    async def shutdown(self, services: Services) -> None:
        await self.writer.close(self.config.shutdown_timeout_s)

    @hookimpl
    def register_routes(self) -> list[Any]:
        return [Route("/admin/audit", self.route.handle, methods=["GET"])]

    # -- per request ---------------------------------------------------------------------
    @hookimpl
    def transform_response(self, ctx: RequestContext, body: bytes) -> None:
        if self.config.store_bodies:
            captured = ctx.state[self.name] = Captured(ctx.wire)
            captured.body = body

    @hookimpl
    def wrap_stream(
        self, ctx: RequestContext, stream: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes] | None:
        if not self.config.store_bodies:
            return None
        captured = ctx.state[self.name] = Captured(ctx.wire)
        return capture(stream, captured)

    @hookimpl
    async def post_response(self, ctx: RequestContext) -> None:
        pii = ctx.state.get(PII_PLUGIN)
        counts = pii.get("counts") if pii is not None else None
        request_body = response_body = None
        if self.config.store_bodies:
            scrub = pii.get("scrub") if pii is not None else None
            if scrub is not None or not self.pii_on:  # else redaction never saw this body
                request_body, response_body = record_bodies(ctx, ctx.state.get(self.name), scrub)
        content = content_of(
            ctx, redactions=counts, request_body=request_body, response_body=response_body
        )
        writer = self.writer
        if self.config.durable:
            await writer.submit(content)
        elif not writer.offer_nowait(content):
            await writer.offer_when_room(content, self.full_wait_s)
