"""Every refusal the gateway makes, as one exception type, and its two wire shapes.

The exception tree::

    GatewayError(status, type, message)       any refusal, rendered in the caller's shape
     ├── UpstreamError                        a provider failed; carries `retryable`
     │    ├── UpstreamTimeout                 504: no answer within the read timeout
     │    └── UpstreamUnreachable             502: connect failure, reset, DNS
     └── ReportedInStream                     a mid-stream failure the client has been told

Rendering lives here and nowhere else, so an error never leaks a key or prompt text
through an ad-hoc f-string somewhere else: callers pass a message, this module shapes it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import msgspec

__all__ = [
    "GatewayError",
    "ReportedInStream",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "anthropic_error_body",
    "anthropic_error_type",
    "openai_error_body",
    "retry_after_s",
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
