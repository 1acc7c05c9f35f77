"""The per-request state that hooks read and write, and the small value types on it.

The core knows nothing of tenants, budgets or prices beyond what a hook puts here.
Everything on this path is created once per request, so the types are slotted (msgspec
Structs and a `__slots__` class): no per-request `__dict__`, no JSON work until asked.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any, Literal

import msgspec

from .validate import invalid_request

__all__ = [
    "Attempt",
    "Candidate",
    "ChatHead",
    "EmbeddingsHead",
    "Identity",
    "Limits",
    "ReadyResponse",
    "RequestContext",
    "RoutingDecision",
    "Usage",
]

Inbound = Literal["openai", "anthropic", "responses"]
Endpoint = Literal["chat", "embeddings", "models", "count_tokens", "other"]


class ChatHead(msgspec.Struct, omit_defaults=True):
    """The fields of a chat-completions request the core reads; the rest stays raw bytes.

    Decoding into this Struct validates `model` and `messages` (msgspec names the field
    in its error) and skips every other field without building Python objects for it.
    """

    model: str
    messages: list[msgspec.Raw]
    stream: bool = False
    # UNSET when the key is absent, None when the client sent null: the OpenAI adapter's
    # include_usage splice must not add a second key next to a null one.
    stream_options: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    # `Raw | None` would accept only null (msgspec cannot put Raw in a union): a Raw field
    # whose default is None keeps "absent" as None and any present value as raw bytes.
    metadata: msgspec.Raw = None  # type: ignore[assignment]
    # The output cap, for the policy plugins' worst-case reservations (read it with
    # `RequestContext.output_cap()`): an int where the inbound format validates it
    # (inbound.ChatRequest), else whatever the client sent, validated by the provider.
    max_tokens: Any = None
    max_completion_tokens: Any = None


class EmbeddingsHead(msgspec.Struct):
    model: str
    input: msgspec.Raw


class Limits(msgspec.Struct, omit_defaults=True, frozen=True):
    """Limits an auth plugin found for a tenant or a key; None means no limit."""

    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None


class Identity(msgspec.Struct, omit_defaults=True):
    """Who is calling: set by an auth plugin in `pre_auth`, read by policy plugins.

    `tenant_limits` and `key_limits` are what the store says for the tenant and for
    this key; rate_limit and budget enforce both. `provider_keys` maps a provider name
    to the tenant's own key for it (an override of the provider's configured key).
    """

    tenant: str
    key_id: str | None = None
    name: str | None = None
    # The models this caller may use (empty: all); `/v1/models` lists only these.
    models: list[str] = []
    tenant_limits: Limits = Limits()
    key_limits: Limits = Limits()
    provider_keys: dict[str, str] = {}
    attributes: dict[str, Any] = {}


class Candidate(msgspec.Struct, frozen=True):
    """One way to serve the request: a configured provider and the model to ask it for."""

    provider: str
    model: str


class RoutingDecision(msgspec.Struct):
    """What a `route` hook returns: candidates in the order the core tries them."""

    candidates: list[Candidate]
    reason: str = ""


class Usage(msgspec.Struct):
    """Tokens of one request, from the provider's own usage fields.

    `estimated` is true when the provider sent none (a stream cut off mid-way) and the
    core counted what it relayed instead, so a budget never silently skips a request.
    `prompt_tokens` counts every prompt token, including `cached_tokens` (prompt-cache
    reads) and `cache_write_tokens` (Anthropic cache creation), which are priced apart.
    `reasoning_tokens` is the part of `completion_tokens` a reasoning model spent thinking
    (reported by the Responses API; priced as output, so it is informational).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Attempt(msgspec.Struct):
    """One try at one candidate: the core appends one per candidate it tries."""

    provider: str
    model: str
    status: int = 0
    error: str | None = None
    retryable: bool = False
    latency_ms: float = 0.0
    # The upstream's Retry-After, in seconds, when a failed attempt carried one.
    retry_after_s: float | None = None


class ReadyResponse(msgspec.Struct):
    """A complete answer a `pre_forward` plugin supplies instead of forwarding (a cache).

    `body` is an OpenAI chat.completion (or embeddings) JSON document; it is rendered in
    the caller's format, and for a streamed request the core replays it as chunks (text
    and tool calls). `status` and `headers` go out with it, streamed or not.
    """

    body: bytes
    status: int = 200
    headers: dict[str, str] = {}


class RequestContext:
    """One request as it moves through the hooks.

    `raw` is the body exactly as the client sent it; it is forwarded untouched unless a
    hook changed a field through `set_field`. `state` is a per-plugin scratch space:
    `ctx.state["budget"]` belongs to the budget plugin and no one else.
    """

    __slots__ = (
        "_payload",
        "attempting",
        "attempts",
        "body",
        "client",
        "cost_usd",
        "deadline",
        "decision",
        "endpoint",
        "error",
        "expired",
        "headers",
        "identity",
        "inbound",
        "include_usage",
        "method",
        "model",
        "overrides",
        "path",
        "provider",
        "raw",
        "request_id",
        "requested_model",
        "response",
        "response_headers",
        "started",
        "state",
        "status",
        "stream",
        "tags",
        "timings",
        "usage",
        "wire",
    )

    def __init__(
        self,
        *,
        request_id: str,
        inbound: Inbound,
        endpoint: Endpoint,
        path: str,
        headers: dict[str, str],
        client: str | None,
        method: str = "POST",
        deadline: float = float("inf"),
    ) -> None:
        self.request_id = request_id
        self.inbound: Inbound = inbound
        self.endpoint: Endpoint = endpoint
        self.method = method
        self.path = path
        self.headers = headers
        self.client = client
        # The body is not read yet: pre_auth runs on headers alone (`set_body` fills these).
        self.raw = b""
        self.body: ChatHead | EmbeddingsHead = _NO_BODY
        self.requested_model = ""
        self.stream = False
        self.include_usage = False
        # The wire format of `raw` and of the answers and events hooks see: "openai" (the
        # canonical shape) unless a native pass-through keeps the provider's own.
        self.wire: Inbound = "openai"
        self.identity: Identity | None = None
        self.tags: dict[str, str] = {}
        self.decision: RoutingDecision | None = None
        self.attempts: list[Attempt] = []
        self.response: ReadyResponse | None = None
        self.response_headers: dict[str, str] | None = None
        self.usage = Usage()
        self.cost_usd: float = 0.0
        self.provider: str | None = None
        self.model: str | None = None
        self.status: int = 0
        self.error: Exception | None = None
        self.started = time.perf_counter()
        # `asyncio` loop time by which the whole request (every attempt) must be answered.
        self.deadline = deadline
        self.attempting = False  # waiting on an upstream attempt (the deadline applies)
        self.expired = False  # the deadline passed during an attempt (set by disconnect.py)
        self.timings: dict[str, float] = {}
        self.state: dict[str, Any] = {}
        self.overrides: dict[str, Any] | None = None
        self._payload: dict[str, Any] | None = None

    def set_body(
        self,
        raw: bytes,
        body: ChatHead | EmbeddingsHead,
        *,
        stream: bool = False,
        include_usage: bool = False,
    ) -> None:
        """The decoded request body, once it has been read (after `pre_auth`)."""
        self.raw = raw
        self.body = body
        self.requested_model = body.model
        self.stream = stream
        self.include_usage = include_usage

    # -- the outcome ----------------------------------------------------------------------
    def fail(self, error: Exception, status: int) -> None:
        """Record why the request failed: the one place status and error are set together."""
        self.error = error
        self.status = status

    def add_header(self, name: str, value: str) -> None:
        """A header for the response to the client (rate-limit counts, the route taken),
        sent on success and on errors alike. `name` should be lower-case."""
        if self.response_headers is None:
            self.response_headers = {}
        self.response_headers[name] = value

    # -- the body ---------------------------------------------------------------------
    def set_field(self, name: str, value: Any) -> None:
        """Change one top-level field of the request body (redaction, a forced model).

        The change is applied when the body is next encoded; fields nobody touched keep
        their original bytes.
        """
        if self.overrides is None:
            self.overrides = {}
        self.overrides[name] = value
        self._payload = None

    def body_bytes(self, extra: dict[str, Any] | None = None) -> bytes:
        """The body to forward: the original bytes, or re-encoded with the overrides.

        Re-encoding decodes the top level only (`dict[str, Raw]`), so untouched fields
        are copied as bytes, never parsed.
        """
        if not self.overrides and not extra:
            return self.raw
        if not self.overrides and extra is not None and list(extra) == ["model"]:
            spliced = _splice_model(self.raw, self.requested_model, extra["model"])
            if spliced is not None:
                return spliced
        try:
            top = _decode_top(self.raw)
        except (msgspec.MsgspecError, RecursionError) as exc:
            raise invalid_request(exc) from None
        if self.overrides:
            top.update(self.overrides)
        if extra:
            top.update(extra)
        return _encode(top)

    def payload(self) -> dict[str, Any]:
        """The whole body as Python objects, overrides applied; decoded once, on demand.

        For adapters that translate the request to another wire format and for plugins
        that read message text. The pass-through path never calls it.
        """
        if self._payload is None:
            # The inbound checks passed, but skipped parts may still hold what Python
            # objects cannot (a lone surrogate escape, a number out of range): a 400.
            try:
                data: dict[str, Any] = _decode_any(self.raw)
            except (msgspec.MsgspecError, RecursionError) as exc:
                raise invalid_request(exc) from None
            if self.overrides:
                data.update(self.overrides)
            self._payload = data
        return self._payload

    def drop_payload(self) -> None:
        """Forget the decoded payload (the body was replaced as a whole)."""
        self._payload = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def output_cap(self) -> int | None:
        """The output tokens the request allows (`max_completion_tokens`, else
        `max_tokens`; Anthropic's `max_tokens`; Responses' `max_output_tokens`), or None
        when it sets none or sets something that is not a positive integer."""
        head = self.body
        for value in (
            getattr(head, "max_completion_tokens", None),
            getattr(head, "max_tokens", None),
        ):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return None

    # -- message texts, whatever the format -------------------------------------------
    def texts(self) -> list[str]:
        """Every text of the request's messages (system prompts, string contents, text
        parts), in order, whatever the inbound format: what redaction and routing read."""
        from .texts import collect_texts

        return collect_texts(self.payload(), self.wire)

    def map_texts(self, fn: Any, *, tools: bool = False) -> int:
        """Replace every message text with `fn(text)` (format-neutral, see `texts`);
        with `tools`, tool-call arguments and tool results too. Returns how many texts
        changed; the changed fields are forwarded through `set_field`."""
        from .texts import map_texts

        return map_texts(self, fn, tools=tools)


def _splice_model(raw: bytes, old: str, new: str) -> bytes | None:
    """The body with only the model name replaced, every other byte as the client sent
    it; None when the old value is not found exactly once (then the caller re-encodes)."""
    pattern, width = _model_pattern(old)
    matches = pattern.finditer(raw)
    match = next(matches, None)
    if match is None or next(matches, None) is not None:
        return None
    return raw[: match.end() - width] + _encode(new) + raw[match.end() :]


@functools.lru_cache(maxsize=256)
def _model_pattern(old: str) -> tuple[re.Pattern[bytes], int]:
    """`"model": <old as JSON>` as a compiled pattern, and the JSON value's length: made
    once per requested model name (a router rewrites the same few names, `auto`...)."""
    needle = _encode(old)
    return re.compile(rb'"model"\s*:\s*' + re.escape(needle)), len(needle)


_NO_BODY = ChatHead(model="", messages=[])
_decode_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_any = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
