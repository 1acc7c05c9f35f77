"""What a provider adapter is: one configured upstream speaking one wire format.

The canonical shape inside the gateway is OpenAI chat completions: a provider turns a
request context into its own wire format and its answers back into OpenAI
`chat.completion` JSON and `chat.completion.chunk` SSE events. An OpenAI-format
upstream does no translation at all (bytes pass through).

Adapters that speak HTTP subclass `HttpProvider` and fill in four small methods; the
sending, streaming and usage estimation are shared here (SSE decoding lives in sse.py,
the error policy in errors.py). An adapter never logs and never puts its key into an
error message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlsplit

import msgspec

from ..config import ConfigError, ProviderConfig, Secret, convert_table, resolve_secret
from ..context import RequestContext, Usage
from ..errors import (
    GatewayError,
    UpstreamError,
    generic_error_text,
    redirect_refused,
    upstream_error,
)
from ..forward import ClientSettings, UpstreamClient, UpstreamResponse, make_client

__all__ = [
    "HttpProvider",
    "NoOptions",
    "Provider",
    "ProviderReply",
    "client_key",
    "cut_off_usage",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "estimated_usage",
    "path_segment",
]


T = TypeVar("T")


class NoOptions(msgspec.Struct, forbid_unknown_fields=True):
    pass


class ProviderReply(msgspec.Struct):
    """A non-streamed answer: canonical JSON bytes and the headers worth passing on."""

    body: bytes
    headers: dict[str, str] = {}


class Provider:
    """Base of every adapter. One instance per [[providers]] table, made at start-up.

    `Options` is the Struct for the kind-specific keys of the table; a typo there stops
    start-up with the provider's name and the key.
    """

    kind: ClassVar[str] = ""
    # The request/answer format this provider speaks natively: a request arriving in the
    # same format is forwarded as is (core/wire.py); "openai" is the canonical shape.
    wire: ClassVar[str] = "openai"
    # Every inbound format it serves without translation (its `wire` and any others, such
    # as "responses" for OpenAI's Responses API); the rest reach it as canonical requests.
    wires: ClassVar[frozenset[str]] = frozenset({"openai"})
    Options: ClassVar[type[msgspec.Struct]] = NoOptions
    requires_key: ClassVar[bool] = False
    default_base_url: ClassVar[str | None] = None

    def __init__(
        self, config: ProviderConfig, *, client_kind: str = "httpx", source: str = ""
    ) -> None:
        self.name = config.name
        self.config = config
        self.options: Any = convert_table(
            config.options, self.Options, source=source, table=f"providers '{config.name}'"
        )
        self.api_key: Secret | None = resolve_secret(
            config.api_key, where=f"{source}: [providers '{config.name}'] key `api_key`"
        )
        self.base_url = (config.base_url or self.default_base_url or "").rstrip("/")

    @property
    def models(self) -> list[str]:
        return [m for m in self.config.models if m != "*"]

    def serves(self, model: str) -> bool:
        return self.config.serves(model)

    def upstream_model(self, model: str) -> str:
        return self.config.model_map.get(model, model)

    def missing(self) -> str | None:
        """Why this provider cannot serve (an unset key), or None when it can."""
        if self.requires_key and self.api_key is None:
            ref = self.config.api_key or "api_key"
            return f"no key ({ref} is not set)"
        return None

    def secrets(self) -> list[str]:
        return [self.api_key.reveal()] if self.api_key else []

    async def chat(self, ctx: RequestContext, model: str) -> ProviderReply:
        raise GatewayError(400, "invalid_request_error", f"provider '{self.name}' has no chat API")

    async def chat_stream(self, ctx: RequestContext, model: str) -> AsyncIterator[bytes]:
        """Open a stream and return an iterator of canonical SSE events.

        Must raise `UpstreamError` before returning when the upstream refused, so the
        core can try the next candidate; the iterator yields whole `data: ...` events
        and ends with `data: [DONE]`.
        """
        raise GatewayError(400, "invalid_request_error", f"provider '{self.name}' has no chat API")

    async def embeddings(self, ctx: RequestContext, model: str) -> ProviderReply:
        raise GatewayError(
            400, "invalid_request_error", f"provider '{self.name}' has no embeddings API"
        )

    async def aclose(self) -> None:
        return None


class HttpProvider(Provider):
    """A provider reached over HTTP through the shared upstream client."""

    requires_key = True
    # True when the upstream model name goes into the URL path (Gemini, Azure): then
    # every listed model and model_map value must be a safe path segment.
    model_in_path: ClassVar[bool] = False
    # The API version paths a base_url may end with; one that ends with none of them is
    # the host as the vendor's SDKs take it (`https://api.anthropic.com`), and the first
    # is appended. Empty: base_url is used as configured.
    api_versions: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, config: ProviderConfig, *, client_kind: str = "httpx", source: str = ""
    ) -> None:
        super().__init__(config, client_kind=client_kind, source=source)
        if self.base_url and self.api_versions and not self.base_url.endswith(self.api_versions):
            self.base_url += self.api_versions[0]
        if not self.base_url:
            raise ConfigError(
                f"{source}: [providers '{config.name}'] key `base_url`: "
                f"required for kind '{self.kind}'"
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{source}: [providers '{config.name}'] key `base_url`: must be http:// or https://"
            )
        settings = ClientSettings(
            config.name,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            max_connections=config.max_connections,
            max_keepalive=config.max_keepalive,
        )
        self.client: UpstreamClient = make_client(client_kind, settings)
        self._json_headers: dict[str, str] | None = None
        self._key_header = ""
        self._key_prefix = ""
        if self.model_in_path:
            self._check_path_models(source)

    def _check_path_models(self, source: str) -> None:
        named = [("models", m) for m in self.config.models if m != "*"]
        named += [("model_map", m) for m in self.config.model_map.values()]
        for key, model in named:
            try:
                path_segment(model)
            except GatewayError as err:
                raise ConfigError(
                    f"{source}: [providers '{self.name}'] key `{key}`: {err.message}"
                ) from None

    def json_headers(
        self, key_header: str, prefix: str = "", extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Request headers: JSON, no compression, the key in `key_header` (after
        `prefix`), the format's `extra` headers, then the configured ones.

        They never change for a provider, so they are built once and the same dict is
        sent every time (the clients copy it; nothing may mutate it)."""
        if self._json_headers is not None:
            return self._json_headers
        self._key_header, self._key_prefix = key_header, prefix
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if extra:
            headers.update(extra)
        if self.api_key is not None:
            headers[key_header] = prefix + self.api_key.reveal()
        headers.update(self.config.headers)
        self._json_headers = headers
        return headers

    def keyed(self, ctx: RequestContext, headers: Mapping[str, str]) -> Mapping[str, str]:
        """The headers of one request, when its key is not the provider's own: the
        tenant's override for this provider (`ctx.identity.provider_keys`), or, with no
        auth plugin (no identity) and no key configured, the client's own key (a plain
        proxy). A caller with an identity never has its own credential sent upstream."""
        identity = ctx.identity
        if identity is None:
            if self.api_key is not None:
                return headers
            key = client_key(ctx.headers)
        elif identity.provider_keys:
            key = identity.provider_keys.get(self.name, "")
        else:
            return headers
        if not key or not self._key_header:
            return headers
        out = dict(headers)
        out[self._key_header] = self._key_prefix + key
        return out

    # -- what a wire format fills in ----------------------------------------------------
    def chat_request(
        self, ctx: RequestContext, model: str, stream: bool
    ) -> tuple[str, dict[str, str], bytes]:
        """`(url, headers, body)` of the upstream request. The URL is built from the
        configured base_url only: nothing the client sends chooses the address."""
        raise NotImplementedError

    def chat_response(self, ctx: RequestContext, model: str, body: bytes) -> bytes:
        """Upstream JSON -> canonical chat.completion bytes; sets `ctx.usage`."""
        raise NotImplementedError

    def chat_events(
        self, ctx: RequestContext, model: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        """Upstream stream bytes -> canonical SSE events; sets `ctx.usage` at the end."""
        raise NotImplementedError

    def error_message(self, body: bytes) -> tuple[str, str | None]:
        """`(message, type)` from an error body in this wire format."""
        return generic_error_text(body)

    def decode_answer(self, decode: Callable[[bytes], T], body: bytes) -> T:
        """An upstream's answer decoded, or a retryable 502 when it is not readable."""
        try:
            return decode(body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(
                502,
                "upstream_error",
                f"provider '{self.name}' sent an unreadable answer: {exc}",
                retryable=True,
            ) from None

    # -- shared machinery -----------------------------------------------------------------
    async def _send(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        stream: bool,
        *,
        ctx: RequestContext,
    ) -> UpstreamResponse:
        resp = await self.client.send("POST", url, self.keyed(ctx, headers), body, stream=stream)
        if resp.status >= 300:
            try:
                err_body = await resp.read()
            finally:
                await resp.aclose()
            path = urlsplit(url).path
            if resp.status < 400:
                raise redirect_refused(self, resp.status, path)
            message, type_ = self.error_message(err_body)
            raise upstream_error(self, resp.status, resp.headers, message, type_, path=path)
        return resp

    async def chat(self, ctx: RequestContext, model: str) -> ProviderReply:
        url, headers, body = self.chat_request(ctx, model, False)
        resp = await self._send(url, headers, body, False, ctx=ctx)
        return ProviderReply(self.chat_response(ctx, model, await resp.read()))

    async def chat_stream(self, ctx: RequestContext, model: str) -> AsyncIterator[bytes]:
        url, headers, body = self.chat_request(ctx, model, True)
        resp = await self._send(url, headers, body, True, ctx=ctx)
        return _closing(self.chat_events(ctx, model, resp.aiter_bytes()), resp)

    async def aclose(self) -> None:
        await self.client.aclose()


async def _closing(events: AsyncIterator[bytes], resp: UpstreamResponse) -> AsyncIterator[bytes]:
    """Relay events and always close the upstream response: on the end, on an error, and
    when the client went away (the generator is closed), so the provider stops."""
    try:
        async for event in events:
            yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
        await resp.aclose()


def client_key(headers: Mapping[str, str]) -> str:
    """The credential a client sent: `Authorization: Bearer X` (OpenAI clients) or
    `x-api-key: X` (Anthropic clients); "" when there is none."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key", "").strip()


def path_segment(value: str, field: str = "model") -> str:
    """`value` as one URL path segment (every reserved character quoted), or a 400 naming
    `field`: an empty name, `.` or `..` (which clients and servers normalise into another
    path on the same host), or a `/` or `\\` would put the request somewhere else."""
    if not value.strip(".") or "/" in value or "\\" in value:
        raise GatewayError(
            400,
            "invalid_request_error",
            f"`{field}` {value[:100]!r} cannot be used in a URL path "
            "(it must not be empty, '.' or '..', nor contain '/' or '\\')",
            param=field,
        )
    return quote(value, safe="")


def estimate_tokens(text: str | bytes) -> int:
    """The gateway's one token estimate, wherever no tokenizer count exists: about four
    characters a token (rounded up, at least 1), the average of the providers' own
    tokenizers on English text. Bytes are counted as the UTF-8 characters they encode."""
    if isinstance(text, bytes):
        chars = len(text) if text.isascii() else len(text.decode("utf-8", "replace"))
    else:
        chars = len(text)
    return max(1, -(-chars // 4))


def estimate_prompt_tokens(ctx: RequestContext) -> int:
    """The prompt of a request whose provider reported no usage (a stream cut off, Gemini
    embeddings): `estimate_tokens` over the request body as the gateway holds it (the
    client's JSON; an Anthropic-format request's translation), as `count_tokens` does."""
    return estimate_tokens(ctx.raw)


def estimated_usage(ctx: RequestContext, completion_events: int) -> Usage:
    """Usage for a stream that ended without the provider's usage: streams send about
    one token per content event, so the count of content events is a fair estimate."""
    return Usage(
        prompt_tokens=estimate_prompt_tokens(ctx),
        completion_tokens=completion_events,
        estimated=True,
    )


def cut_off_usage(ctx: RequestContext, usage: Usage | None, completion_events: int) -> Usage:
    """Usage of a stream that ended early: the provider's prompt count when it sent one
    (Anthropic and Gemini report it up front), an estimate for the rest."""
    estimate = estimated_usage(ctx, completion_events)
    if usage is not None and usage.prompt_tokens:
        estimate.prompt_tokens = usage.prompt_tokens
        estimate.cached_tokens = usage.cached_tokens
        estimate.cache_write_tokens = usage.cache_write_tokens
        estimate.completion_tokens = max(usage.completion_tokens, completion_events)
    return estimate
