"""Every refusal the gateway makes, as one exception type, and its two wire shapes.

The exception tree::

    GatewayError(status, type, message)       any refusal, rendered in the caller's shape
     ├── UpstreamError                        a provider failed; carries `retryable`
     │    ├── UpstreamTimeout                 504: no answer within the read timeout
     │    └── UpstreamUnreachable             502: connect failure, reset, DNS
     └── ReportedInStream                     a mid-stream failure the client has been told

Rendering lives here and nowhere else, so an error never leaks a key or prompt text
through an ad-hoc f-string somewhere else: callers pass a message, this module shapes it.
So does the error policy for upstreams (`upstream_error`): which provider status
becomes which caller status, what may be retried elsewhere, and what of the provider's
text may be shown (`scrub`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Protocol

import msgspec

__all__ = [
    "GatewayError",
    "ReportedInStream",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "anthropic_error_body",
    "anthropic_error_type",
    "generic_error_text",
    "openai_error_body",
    "redirect_refused",
    "retry_after_s",
    "scrub",
    "upstream_error",
]

_encode = msgspec.json.Encoder().encode


class GatewayError(Exception):
    """A refusal with an HTTP status, an OpenAI-style error `type` and a safe message.

    `headers` go out with the response (for instance `retry-after` on a 429). The message
    must never contain a key or prompt text: it is shown to the caller and logged.
    """

    retryable: bool = False

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.headers: Mapping[str, str] = headers or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.type!r}, {self.message!r})"


class UpstreamError(GatewayError):
    """A provider answered with an error, or could not be reached.

    `retryable` says whether the next candidate may be tried (rate limit, overload,
    5xx, timeout, connect failure); a bad request is never retried elsewhere.
    """

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        retryable: bool,
        upstream_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, type, message, code=code, param=param, headers=headers)
        self.retryable = retryable
        self.upstream_status = upstream_status


class UpstreamTimeout(UpstreamError):
    def __init__(self, provider: str) -> None:
        super().__init__(
            504,
            "upstream_timeout",
            f"provider '{provider}' did not answer in time",
            retryable=True,
        )


class UpstreamUnreachable(UpstreamError):
    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(
            502,
            "upstream_unreachable",
            f"provider '{provider}' could not be reached ({reason})",
            retryable=True,
        )


class ReportedInStream(GatewayError):
    """A failure after the first byte that the client was already told about inside the
    stream, in its format's own events (a Responses `response.failed`, say): the core
    records it on the request and sends nothing more."""

    @classmethod
    def of(cls, err: GatewayError) -> ReportedInStream:
        reported = cls(
            err.status, err.type, err.message, code=err.code, param=err.param, headers=err.headers
        )
        reported.retryable = err.retryable
        return reported


def openai_error_body(err: GatewayError) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}` as OpenAI sends it."""
    return _encode(
        {
            "error": {
                "message": err.message,
                "type": err.type,
                "param": err.param,
                "code": err.code or err.type,
            }
        }
    )


# Anthropic has a closed set of error types; map ours onto it by status.
_ANTHROPIC_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    return _ANTHROPIC_BY_STATUS.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )


def anthropic_error_body(err: GatewayError) -> bytes:
    """`{"type": "error", "error": {"type", "message"}}` as Anthropic sends it."""
    return _encode(
        {
            "type": "error",
            "error": {"type": anthropic_error_type(err.status), "message": err.message},
        }
    )


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """An upstream's `retry-after` in seconds (a number, or an HTTP date), None when it
    sent none or an unreadable one; never negative."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if seconds != seconds or seconds == float("inf"):  # NaN, inf
        return None
    return max(0.0, seconds)


# ---------------------------------------------------------------------------------------
# The error policy for upstreams: how a provider's error becomes the caller's
# ---------------------------------------------------------------------------------------
class _Upstream(Protocol):
    """What the policy needs of a provider: its name, and its secrets to scrub."""

    name: str

    def secrets(self) -> list[str]: ...


class _ErrorDetail(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    status: str | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | str | None = None
    message: str | None = None


_decode_error = msgspec.json.Decoder(_ErrorBody).decode


def generic_error_text(body: bytes) -> tuple[str, str | None]:
    """OpenAI `{"error": {...}}`, Anthropic `{"type":"error","error":{...}}`, Gemini
    `{"error": {"message","status"}}` and bare `{"message"}` all fit this reading."""
    try:
        parsed = _decode_error(body)
    except msgspec.DecodeError:
        return "", None
    if isinstance(parsed.error, _ErrorDetail):
        return parsed.error.message or "", parsed.error.type or parsed.error.status
    if isinstance(parsed.error, str):
        return parsed.error, None
    return parsed.message or "", None


_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-*]{4,}|AIza[0-9A-Za-z_\-]{10,}|[A-Za-z0-9_\-]{32,})")


def scrub(message: str, secrets: list[str]) -> str:
    """Remove keys (ours and anything key-shaped) from an upstream's error message."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    message = _KEYLIKE.sub("[redacted]", message)
    return message[:1000]


def redirect_refused(provider: _Upstream, status: int, path: str) -> UpstreamError:
    """A 3xx: never followed (it would send the key and the prompt to another address).
    Retryable, like a refused key: the operator's problem, another candidate may work."""
    return UpstreamError(
        502,
        "upstream_error",
        f"provider '{provider.name}' answered HTTP {status} (a redirect) for POST "
        f"{scrub(path, provider.secrets())}; the gateway never follows redirects: "
        "check its base_url",
        retryable=True,
        upstream_status=status,
    )


def upstream_error(
    provider: _Upstream,
    status: int,
    headers: Mapping[str, str],
    message: str,
    type_: str | None,
    *,
    path: str | None = None,
) -> UpstreamError:
    """An upstream's error status as the caller should see it, and whether to fail over.

    429 stays 429 (Retry-After kept); 401/403 mean *our* key was refused, which is the
    operator's problem, so the caller gets a 502 without the upstream's text (it may echo
    part of the key); 408 and timeouts are 504; 503/529 overloaded are 503; other 5xx
    are 502. Client errors (400, 404, 422) keep their status and are not retried; a 404
    names the URL `path` that failed (never its query string, never the key), since a
    wrong base_url is the usual cause.
    """
    name = provider.name
    text = scrub(message, provider.secrets()) or f"HTTP {status}"
    if status == 429:
        retry = {"retry-after": headers["retry-after"]} if "retry-after" in headers else None
        return UpstreamError(
            429,
            "rate_limit_error",
            f"provider '{name}' rate limit: {text}",
            retryable=True,
            upstream_status=status,
            headers=retry,
        )
    if status in (401, 403):
        return UpstreamError(
            502,
            "upstream_auth_error",
            f"provider '{name}' refused the gateway's credentials (HTTP {status})",
            retryable=True,
            upstream_status=status,
        )
    if status == 408:
        return UpstreamError(
            504,
            "upstream_timeout",
            f"provider '{name}' timed out: {text}",
            retryable=True,
            upstream_status=status,
        )
    if status in (503, 529):
        return UpstreamError(
            503,
            "overloaded_error",
            f"provider '{name}' is overloaded: {text}",
            retryable=True,
            upstream_status=status,
        )
    if status >= 500:
        return UpstreamError(
            502,
            "upstream_error",
            f"provider '{name}' failed (HTTP {status}): {text}",
            retryable=True,
            upstream_status=status,
        )
    if status == 404:
        said = scrub(message, provider.secrets())
        where = f" for POST {scrub(path, provider.secrets())}" if path else ""
        return UpstreamError(
            404,
            "model_not_found" if "model" in said.lower() else "not_found_error",
            f"provider '{name}' answered HTTP 404{where}" + (f": {said}" if said else ""),
            retryable=False,
            upstream_status=status,
        )
    return UpstreamError(
        status if 400 <= status < 500 else 502,
        type_ or "invalid_request_error",
        f"provider '{name}': {text}",
        retryable=False,
        upstream_status=status,
    )
