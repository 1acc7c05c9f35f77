"""One audit record: its columns, how it is made from a finished request, and the hash
that chains it to the record before it.

A record says who (tenant, key id, user and feature tags), what (endpoint, requested
model, the routed provider and model, why, every attempt), how it ended (status, error
type, tokens, cost, latency, time to first byte) and what redaction found (counts per
type). Never a key (the key id is an identifier, not the key), never a value redaction
removed, and bodies only when the plugin is told to store them.

The hash of a record is sha256(prev_hash + canonical bytes), where the canonical bytes
are the JSON array of its columns in `COLUMNS` order, as stored (chain id and sequence
number included, prev_hash and hash excluded). Every value is normalised before it is
hashed (ints as ints, floats as floats, strings without NUL or lone surrogates), so the
store gives back exactly what was hashed and `verify` can recompute it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from interlock.core import Attempt, GatewayError, RequestContext

__all__ = [
    "COLUMNS",
    "CONTENT",
    "GENESIS",
    "JSON_COLUMNS",
    "chain_hash",
    "content_of",
    "iso",
    "parse_time",
]

# Every column, in the order hashed, stored and exported.
COLUMNS: tuple[str, ...] = (
    "chain_id",
    "seq",
    "ts",
    "request_id",
    "tenant",
    "key_id",
    "end_user",
    "feature",
    "tags",
    "method",
    "path",
    "inbound",
    "endpoint",
    "stream",
    "requested_model",
    "provider",
    "model",
    "route_reason",
    "attempts",
    "status",
    "error_type",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "usage_estimated",
    "cost_usd",
    "latency_ms",
    "ttfb_ms",
    "redactions",
    "request_body",
    "response_body",
    "prev_hash",
    "hash",
)
# What a request contributes (the writer adds chain_id and seq before, the hashes after).
CONTENT = COLUMNS[2:-2]
# Columns holding JSON text (decoded again when records are shown).
JSON_COLUMNS = frozenset({"tags", "attempts", "redactions", "request_body", "response_body"})
GENESIS = "0" * 64  # the prev_hash of a chain's first record

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def iso(t: float) -> str:
    """UTC with microseconds and a Z, fixed width, so text order is time order.

    Every record needs one, and strftime costs several µs: the text up to the second is
    kept for the second it names (requests arrive in the same second), the microseconds
    rounded as datetime.fromtimestamp rounds them."""
    frac, whole = math.modf(t)
    us = round(frac * 1e6)
    second = int(whole)
    if frac < 0 or us >= 1_000_000:  # before 1970, or a fraction that rounds up
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cached = _SECOND
    if cached[0] != second:
        cached = _SECOND[:] = [
            second,
            datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        ]
    return f"{cached[1]}.{us:06d}Z"


_SECOND: list[Any] = [None, ""]  # [the Unix second, its text]: the last one formatted


def parse_time(value: str) -> str:
    """A date (`2026-11-25`) or an ISO 8601 time (with Z or an offset; naive means UTC)
    as the stored format; ValueError when it is neither."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def clean(value: str) -> str:
    """A string every store accepts as TEXT: PostgreSQL refuses NUL, UTF-8 refuses lone
    surrogates (a JSON body may carry both)."""
    if value.isascii():
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode()
    return value.replace("\x00", "\ufffd")


def _opt(value: str | None) -> str | None:
    return clean(value) if value else None


def _plain(text: str) -> bool:
    """True when `text` needs no `clean` (ASCII without NUL): the common case, checked
    once on all of a record's strings run together instead of field by field."""
    return text.isascii() and "\x00" not in text


class _Attempt(msgspec.Struct):
    provider: str
    model: str
    status: int
    error: str | None
    latency_ms: float


def _attempts_json(attempts: Sequence[Attempt]) -> str:
    """The attempts as the record's JSON text (provider, model, status, error, latency)."""
    out = []
    for a in attempts:
        provider, model, error = a.provider, a.model, a.error or None
        if not _plain(f"{provider}{model}{error}"):
            provider, model, error = clean(provider), clean(model), _opt(error)
        out.append(_Attempt(provider, model, int(a.status), error, round(float(a.latency_ms), 3)))
    return _encode(out).decode()


def content_of(
    ctx: RequestContext,
    *,
    redactions: dict[str, int] | None,
    request_body: str | None,
    response_body: str | None,
    now: Callable[[], float] = time.time,
) -> tuple[Any, ...]:
    """The record of a finished request, in `CONTENT` order, every value normalised.

    Strings are `clean`ed (optional ones: empty means None); when all of them together
    are plain ASCII without NUL, as nearly every request's are, they are kept as they
    are after one check, which is what `clean` would give them one by one."""
    identity = ctx.identity
    tags = ctx.tags
    usage = ctx.usage
    err = ctx.error
    error_type = None
    if err is not None:
        error_type = err.type if isinstance(err, GatewayError) else type(err).__name__
    timings = ctx.timings
    latency = timings.get("latency_ms")
    if latency is None:
        latency = ctx.elapsed_ms()
    ttfb = timings.get("ttfb_ms")
    decision = ctx.decision
    request_id, method, path = ctx.request_id, ctx.method, ctx.path
    # The optional strings: None when empty or unknown.
    tenant = (identity.tenant or None) if identity else None
    key_id = (identity.key_id or None) if identity else None
    user = tags.get("user") or None
    feature = tags.get("feature") or None
    requested_model = ctx.requested_model or None
    provider = ctx.provider or None
    model = ctx.model or None
    reason = (decision.reason or None) if decision else None
    error_type = error_type or None
    if not _plain(
        f"{request_id}{method}{path}{tenant}{key_id}{user}{feature}"
        f"{requested_model}{provider}{model}{reason}{error_type}"
    ):  # (None shows as "None" here: plain)
        request_id, method, path = clean(request_id), clean(method), clean(path)
        tenant, key_id, user, feature = _opt(tenant), _opt(key_id), _opt(user), _opt(feature)
        requested_model, provider, model = _opt(requested_model), _opt(provider), _opt(model)
        reason, error_type = _opt(reason), _opt(error_type)
    return (
        iso(now() - latency / 1000.0),  # when the request arrived
        request_id,
        tenant,
        key_id,
        user,
        feature,
        clean(_encode(tags).decode()) if tags else "{}",
        method,
        path,
        ctx.inbound,
        ctx.endpoint,
        int(bool(ctx.stream)),
        requested_model,
        provider,
        model,
        reason,
        _attempts_json(ctx.attempts),
        int(ctx.status),
        error_type,
        int(usage.prompt_tokens),
        int(usage.completion_tokens),
        int(usage.cached_tokens),
        int(usage.cache_write_tokens),
        int(bool(usage.estimated)),
        float(ctx.cost_usd),
        round(float(latency), 3),
        round(float(ttfb), 3) if ttfb is not None else None,
        _encode(dict(sorted(redactions.items()))).decode() if redactions else "{}",
        request_body,
        response_body,
    )


def chain_hash(prev_hash: str, chain_id: str, seq: int, content: Sequence[Any]) -> str:
    """sha256(prev_hash + the JSON array [chain_id, seq, *content])."""
    canonical = _encode([chain_id, seq, *content])
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


def scrub_json(body: bytes, scrub: Callable[[str], str] | None) -> str | None:
    """A JSON body as text for the record, every string passed through `scrub` (the
    pii_redaction plugin's, when it is on); not JSON: None (never stored half-known)."""
    try:
        doc = _decode(body)
    except msgspec.DecodeError:
        return None
    if scrub is not None:
        doc = _scrub(doc, scrub)
    return clean(_encode(doc).decode())


def _scrub(node: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(node, str):
        return scrub(node)
    if isinstance(node, dict):
        return {k: _scrub(v, scrub) for k, v in node.items()}
    if isinstance(node, list):
        return [_scrub(v, scrub) for v in node]
    return node
