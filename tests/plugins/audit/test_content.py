"""`content_of` checks a record's strings once, all together, and cleans them one by one
only when that check fails: the record must be exactly what cleaning every field on its
own gives (the reference below is the field-by-field version it replaced), for plain
requests and for hostile ones (NUL, lone surrogates, non-ASCII, empty strings)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from interlock.core import Attempt, GatewayError, Identity, RequestContext, RoutingDecision
from interlock.plugins.audit.record import CONTENT, _Attempt, clean, content_of, iso

_encode = msgspec.json.Encoder().encode


def _opt(value: str | None) -> str | None:
    return clean(value) if value else None


def reference(ctx: RequestContext, now: float) -> tuple[Any, ...]:
    """Every string field cleaned on its own (content_of before the one check)."""
    identity, tags, usage, err = ctx.identity, ctx.tags, ctx.usage, ctx.error
    error_type = None
    if err is not None:
        error_type = err.type if isinstance(err, GatewayError) else type(err).__name__
    latency = ctx.timings["latency_ms"]
    ttfb = ctx.timings.get("ttfb_ms")
    attempts = [
        _Attempt(
            clean(a.provider), clean(a.model), int(a.status), _opt(a.error),
            round(float(a.latency_ms), 3),
        )
        for a in ctx.attempts
    ]  # fmt: skip
    return (
        iso(now - latency / 1000.0),
        clean(ctx.request_id),
        _opt(identity.tenant) if identity else None,
        _opt(identity.key_id) if identity else None,
        _opt(tags.get("user")),
        _opt(tags.get("feature")),
        clean(_encode(tags).decode()) if tags else "{}",
        clean(ctx.method),
        clean(ctx.path),
        ctx.inbound,
        ctx.endpoint,
        int(bool(ctx.stream)),
        _opt(ctx.requested_model),
        _opt(ctx.provider),
        _opt(ctx.model),
        _opt(ctx.decision.reason) if ctx.decision else None,
        _encode(attempts).decode(),
        int(ctx.status),
        _opt(error_type),
        int(usage.prompt_tokens),
        int(usage.completion_tokens),
        int(usage.cached_tokens),
        int(usage.cache_write_tokens),
        int(bool(usage.estimated)),
        float(ctx.cost_usd),
        round(float(latency), 3),
        round(float(ttfb), 3) if ttfb is not None else None,
        "{}",
        None,
        None,
    )


def context(
    text: str, *, key_id: str | None = "key_1", error: Exception | None = None
) -> RequestContext:
    """A finished request with `text` in every string field a client or plugin may set."""
    ctx = RequestContext(
        request_id=f"req-{text}", inbound="openai", endpoint="chat", path=f"/v1/{text}",
        headers={}, client=None, method=f"POST{text}",
    )  # fmt: skip
    ctx.identity = Identity(tenant=f"t{text}", key_id=key_id)
    ctx.tags = {"user": f"u{text}", "feature": text}
    ctx.requested_model = f"m{text}"
    ctx.provider, ctx.model = f"p{text}", f"m{text}"
    ctx.decision = RoutingDecision([], f"why{text}")
    ctx.attempts = [
        Attempt(f"p{text}", f"m{text}", status=502, error=f"e{text}", latency_ms=1.23456),
        Attempt("up", "gpt-4o-mini", status=200, error="", latency_ms=0.5),
    ]
    ctx.status = 200
    ctx.error = error
    ctx.cost_usd = 0.25
    ctx.timings = {"latency_ms": 12.3456789, "ttfb_ms": 3.21}
    return ctx


@pytest.mark.parametrize(
    "text", ["", "plain", "\x00", "a\x00b", "\ud800", "caf\u00e9", "\u2603\x00", "None"]
)
@pytest.mark.parametrize("error", [None, GatewayError(429, "rate_limited\x00", "m"), ValueError()])
def test_the_record_is_what_cleaning_each_field_gives(text: str, error: Exception | None) -> None:
    ctx = context(text, error=error)
    if "\ud800" in text:  # tags come from headers, never with a lone surrogate
        ctx.tags = {"user": "u", "feature": "f"}
    got = content_of(ctx, redactions=None, request_body=None, response_body=None, now=lambda: 1e9)
    assert got == reference(ctx, 1e9)
    assert len(got) == len(CONTENT)
    for value in got:  # every store accepts every string
        if isinstance(value, str):
            value.encode()
            assert "\x00" not in value


def test_empty_optional_strings_are_null() -> None:
    ctx = context("", key_id="")
    ctx.identity = Identity(tenant="", key_id="")
    record = dict(
        zip(
            CONTENT,
            content_of(ctx, redactions=None, request_body=None, response_body=None),
            strict=True,
        )
    )
    assert record["tenant"] is None and record["key_id"] is None
    assert record["feature"] is None and record["route_reason"] == "why"
    assert '"error":null' in record["attempts"]
