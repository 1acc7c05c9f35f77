"""`GET /admin/audit?tenant=&since=&until=&request_id=&limit=`: the newest matching audit
records, for the operator holding the master key.

Closed unless a master key is configured (403 then, for everyone); the key is compared
in constant time (`hmac.compare_digest`) and accepted as `Authorization: Bearer KEY` or
`x-api-key: KEY`. Neither the key nor any header is ever echoed or logged.
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from interlock.core.store import Store

from .query import Filters, page
from .record import parse_time
from .writer import as_document

__all__ = ["AuditRoute"]

_encode = msgspec.json.Encoder().encode
MAX_LIMIT = 1000


def _error(status: int, kind: str, message: str, param: str | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": kind}}
    return Response(_encode(body), status_code=status, media_type="application/json")


class AuditRoute:
    def __init__(self, store: Store, master_key: str | None) -> None:
        self.store = store
        self._key = master_key.encode() if master_key else None

    def _authorised(self, request: Request) -> bool:
        assert self._key is not None
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        return hmac.compare_digest(given.strip().encode(), self._key)

    async def handle(self, request: Request) -> Response:
        if self._key is None:
            return _error(
                403,
                "permission_error",
                "admin routes are closed: no master key is configured ([plugins.audit] master_key)",
            )
        if not self._authorised(request):
            return _error(401, "authentication_error", "a valid master key is required")
        query = request.query_params
        try:
            filters = Filters(
                tenant=query.get("tenant") or None,
                since=parse_time(query["since"]) if query.get("since") else None,
                until=parse_time(query["until"]) if query.get("until") else None,
                request_id=query.get("request_id") or None,
            )
        except ValueError:
            return _error(
                400,
                "invalid_request_error",
                "since and until are dates (2026-11-25) or ISO 8601 times",
                "since/until",
            )
        raw_limit = query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return _error(400, "invalid_request_error", f"limit is 1 to {MAX_LIMIT}", "limit")
        limit = int(raw_limit)
        rows = await page(self.store, filters, limit + 1, newest_first=True)
        body: dict[str, Any] = {
            "object": "list",
            "data": [as_document(row) for row in rows[:limit]],
            "has_more": len(rows) > limit,
        }
        return Response(_encode(body), media_type="application/json")
