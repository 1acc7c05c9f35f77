"""Tests only: keeps what each request's context holds at post_response."""

from interlock.core import Plugin, RequestContext, hookimpl
from tests.plugins.routing import RECORDS


class Recorder(Plugin):
    name = "recorder"

    @hookimpl
    def post_response(self, ctx: RequestContext) -> None:
        RECORDS.append(
            {
                "status": ctx.status,
                "reason": ctx.decision.reason if ctx.decision else None,
                "candidates": [f"{c.provider}/{c.model}" for c in ctx.decision.candidates]
                if ctx.decision
                else [],
                "attempts": [
                    (a.provider, a.model, a.status, a.error, a.retry_after_s) for a in ctx.attempts
                ],
                "headers": dict(ctx.response_headers or {}),
            }
        )
