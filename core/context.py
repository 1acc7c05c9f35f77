"""The per-request state that hooks read and write, and the small value types on it.

The core knows nothing of tenants, budgets or prices beyond what a hook puts here.
Everything on this path is created once per request, so the types are slotted (msgspec
Structs and a `__slots__` class): no per-request `__dict__`, no JSON work until asked.
"""

from __future__ import annotations

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
    "ReadyResponse",
    "RequestContext",
    "RoutingDecision",
    "Usage",
]

Inbound = Literal["openai", "anthropic"]
Endpoint = Literal["chat", "embeddings"]


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


class EmbeddingsHead(msgspec.Struct):
    model: str
    input: msgspec.Raw


class Identity(msgspec.Struct, omit_defaults=True):
    """Who is calling: set by an auth plugin in `pre_auth`."""

    tenant: str
    key_id: str | None = None
    name: str | None = None
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
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False

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


class ReadyResponse(msgspec.Struct):
    """A complete answer a `pre_forward` plugin supplies instead of forwarding (a cache).

    `body` is an OpenAI chat.completion (or embeddings) JSON document; for a streamed
    request the core turns it into chunks.
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
        "attempts",
        "body",
        "client",
        "cost_usd",
        "decision",
        "endpoint",
        "error",
        "headers",
        "identity",
        "inbound",
        "include_usage",
        "model",
        "overrides",
        "path",
        "provider",
        "raw",
        "request_id",
        "requested_model",
        "response",
        "started",
        "state",
        "status",
        "stream",
        "tags",
        "timings",
        "usage",
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
        raw: bytes,
        body: ChatHead | EmbeddingsHead,
        stream: bool = False,
        include_usage: bool = False,
    ) -> None:
        self.request_id = request_id
        self.inbound: Inbound = inbound
        self.endpoint: Endpoint = endpoint
        self.path = path
        self.headers = headers
        self.client = client
        self.raw = raw
        self.body = body
        self.requested_model: str = body.model
        self.stream = stream
        self.include_usage = include_usage
        self.identity: Identity | None = None
        self.tags: dict[str, str] = {}
        self.decision: RoutingDecision | None = None
        self.attempts: list[Attempt] = []
        self.response: ReadyResponse | None = None
        self.usage = Usage()
        self.cost_usd: float = 0.0
        self.provider: str | None = None
        self.model: str | None = None
        self.status: int = 0
        self.error: Exception | None = None
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.state: dict[str, Any] = {}
        self.overrides: dict[str, Any] | None = None
        self._payload: dict[str, Any] | None = None

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

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


_decode_top = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_any = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode
