"""One request through the hooks: auth, route, policy, forward with failover, settle.

The plans are tuples frozen at start-up (`plugins.HookPlans`); this module loops over
them and awaits only what is awaitable. It never touches pluggy, never logs per hook,
and never reads the request body beyond what the inbound format decoded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from .context import Attempt, Candidate, RequestContext, RoutingDecision
from .errors import GatewayError, UpstreamError
from .plugins import HookPlans
from .pricing import Pricing
from .providers.base import Provider, ProviderReply
from .sse import DONE, format_event

__all__ = ["Pipeline", "StreamHandle"]

T = TypeVar("T")


class StreamHandle:
    """An opened stream: `events` to send (after `wrap_stream`), and the provider's own
    iterator underneath, which must be closed too when the client goes away."""

    __slots__ = ("base", "events")

    def __init__(self, events: AsyncIterator[bytes], base: AsyncIterator[bytes]) -> None:
        self.events = events
        self.base = base

    async def aclose(self) -> None:
        for it in (self.events, self.base):
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()


class Pipeline:
    def __init__(
        self,
        plans: HookPlans,
        providers: dict[str, Provider],
        pricing: Pricing,
        logger: Any,
        request_log: Callable[[Any, dict[str, Any]], None] | None = None,
    ) -> None:
        self.plans = plans
        self.providers = providers
        self.pricing = pricing
        self.logger = logger
        # The one line per request (LogSetup.request: the fast path of logger.info).
        self.request_log = request_log or (lambda lg, fields: lg.info("request", **fields))
        self._default_routes: dict[str, RoutingDecision | None] = {}

    # -- before forwarding ---------------------------------------------------------------
    async def prepare(self, ctx: RequestContext) -> None:
        """pre_auth, then route, then pre_forward; a GatewayError stops the request."""
        for fn, is_async in self.plans.pre_auth:
            result = fn(ctx)
            if is_async:
                await result
        decision: RoutingDecision | None = None
        for fn, _ in self.plans.route:
            decision = fn(ctx)
            if decision is not None:
                break
        ctx.decision = decision if decision is not None else self.default_route(ctx.requested_model)
        for fn, is_async in self.plans.pre_forward:
            result = fn(ctx)
            if is_async:
                await result
        if ctx.response is None and not ctx.decision.candidates:
            raise GatewayError(
                503, "no_candidates", f"no provider is available for model '{ctx.requested_model}'"
            )

    def default_route(self, model: str) -> RoutingDecision:
        """The requested model on the first configured provider that lists it."""
        try:
            decision = self._default_routes[model]
        except KeyError:
            decision = None
            for provider in self.providers.values():
                if provider.serves(model):
                    decision = RoutingDecision([Candidate(provider.name, model)], "default")
                    break
            if len(self._default_routes) < 10_000:  # model names come from clients
                self._default_routes[model] = decision
        if decision is None:
            raise GatewayError(
                404,
                "model_not_found",
                f"the model '{model[:200]}' is not served by any configured provider",
                code="model_not_found",
                param="model",
            )
        # A fresh list each time: pre_forward hooks may edit it.
        return RoutingDecision(list(decision.candidates), decision.reason)

    # -- forwarding with failover ----------------------------------------------------------
    async def _failover(self, ctx: RequestContext, call: _Call[T]) -> T:
        """Try the candidates in order, one Attempt each; a retryable UpstreamError moves
        on to the next, any other error stops, the first success is the answer."""
        assert ctx.decision is not None
        last: GatewayError | None = None
        for candidate in ctx.decision.candidates:
            attempt = Attempt(candidate.provider, candidate.model)
            ctx.attempts.append(attempt)
            provider = self.providers.get(candidate.provider)
            if provider is None:
                attempt.error = "unknown_provider"
                last = GatewayError(
                    502,
                    "unknown_provider",
                    f"no provider named '{candidate.provider}' is configured",
                )
                continue
            start = time.perf_counter()
            try:
                result = await call(provider, ctx, candidate.model)
            except UpstreamError as err:
                attempt.status = err.status
                attempt.error = err.type
                attempt.retryable = err.retryable
                attempt.latency_ms = (time.perf_counter() - start) * 1000
                last = err
                if err.retryable:
                    continue
                raise
            attempt.status = 200
            attempt.latency_ms = (time.perf_counter() - start) * 1000
            ctx.provider = candidate.provider
            ctx.model = candidate.model
            ctx.status = 200
            return result
        raise last or GatewayError(503, "no_candidates", "no candidate could be tried")

    async def complete(self, ctx: RequestContext) -> bytes:
        """A non-streamed answer (chat or embeddings) in canonical JSON."""
        if ctx.response is not None:
            ctx.status = ctx.response.status
            return ctx.response.body
        call = _embeddings if ctx.endpoint == "embeddings" else _chat
        return (await self._failover(ctx, call)).body

    async def open_stream(self, ctx: RequestContext) -> StreamHandle:
        """Open a stream and read its first event; a retryable failure before that event
        (nothing has reached the client yet) moves on to the next candidate."""
        if ctx.response is not None:
            ctx.status = ctx.response.status
            events = _replay(ctx.response.body, ctx.include_usage)
            return self._wrapped(ctx, events)
        start = time.perf_counter()
        first, stream = await self._failover(ctx, _open_stream)
        ctx.timings["upstream_first_event_ms"] = (time.perf_counter() - start) * 1000
        return self._wrapped(ctx, _prepend(first, stream), base=stream)

    def _wrapped(
        self,
        ctx: RequestContext,
        events: AsyncIterator[bytes],
        base: AsyncIterator[bytes] | None = None,
    ) -> StreamHandle:
        outer = events
        for fn, _ in self.plans.wrap_stream:
            wrapped = fn(ctx, outer)
            if wrapped is not None:
                outer = wrapped
        return StreamHandle(outer, base or events)

    # -- after the last byte -----------------------------------------------------------------
    async def finish(self, ctx: RequestContext) -> None:
        """Price the request, run post_response (every plugin, whatever the others do),
        and write the one log line."""
        ctx.cost_usd = self.pricing.cost(ctx.model, ctx.usage) if ctx.model else 0.0
        for fn, is_async in self.plans.post_response:
            try:
                result = fn(ctx)
                if is_async:
                    await result
            except Exception as exc:
                self.logger.error(
                    "post_response_failed",
                    request_id=ctx.request_id,
                    hook=getattr(fn, "__qualname__", repr(fn)),
                    error=repr(exc),
                )
        self.log(ctx)

    def log(self, ctx: RequestContext) -> None:
        usage = ctx.usage
        err = ctx.error
        self.request_log(
            self.logger,
            dict(
                request_id=ctx.request_id,
                status=ctx.status,
                inbound=ctx.inbound,
                endpoint=ctx.endpoint,
                stream=ctx.stream,
                requested_model=ctx.requested_model,
                model=ctx.model,
                provider=ctx.provider,
                tenant=ctx.identity.tenant if ctx.identity else None,
                attempts=len(ctx.attempts),
                latency_ms=round(ctx.elapsed_ms(), 3),
                ttfb_ms=round(ctx.timings["ttfb_ms"], 3) if "ttfb_ms" in ctx.timings else None,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                usage_estimated=usage.estimated,
                cost_usd=round(ctx.cost_usd, 8),
                error=(err.type if isinstance(err, GatewayError) else type(err).__name__)
                if err
                else None,
            ),
        )


_Call = Callable[[Provider, RequestContext, str], Awaitable[T]]


def _chat(provider: Provider, ctx: RequestContext, model: str) -> Awaitable[ProviderReply]:
    return provider.chat(ctx, model)


def _embeddings(provider: Provider, ctx: RequestContext, model: str) -> Awaitable[ProviderReply]:
    return provider.embeddings(ctx, model)


async def _open_stream(
    provider: Provider, ctx: RequestContext, model: str
) -> tuple[bytes | None, AsyncIterator[bytes]]:
    """Open the stream and read its first event, so a failure there can still fail over;
    the stream is closed when that fails."""
    stream = await provider.chat_stream(ctx, model)
    try:
        first = await anext(stream, None)
    except BaseException:
        await _aclose(stream)
        raise
    return first, stream


async def _prepend(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first is not None:
        yield first
    async for item in rest:
        yield item


async def _aclose(it: AsyncIterator[bytes]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


class _Message(msgspec.Struct):
    content: str | None = None
    role: str = "assistant"


class _Choice(msgspec.Struct):
    message: _Message
    index: int = 0
    finish_reason: str | None = "stop"


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    id: str = "chatcmpl-ready"
    created: int = 0
    model: str = ""
    usage: dict[str, Any] | None = None


_encode = msgspec.json.Encoder().encode


async def _replay(body: bytes, include_usage: bool) -> AsyncIterator[bytes]:
    """A complete chat.completion (from a cache, say) as a short canonical stream."""
    doc = msgspec.json.decode(body, type=_Completion)
    base = {
        "id": doc.id,
        "object": "chat.completion.chunk",
        "created": doc.created,
        "model": doc.model,
    }
    for choice in doc.choices:
        delta = {"role": choice.message.role, "content": choice.message.content or ""}
        yield format_event(
            _encode(
                {
                    **base,
                    "choices": [{"index": choice.index, "delta": delta, "finish_reason": None}],
                }
            )
        )
        yield format_event(
            _encode(
                {
                    **base,
                    "choices": [
                        {"index": choice.index, "delta": {}, "finish_reason": choice.finish_reason}
                    ],
                }
            )
        )
    if include_usage and doc.usage is not None:
        yield format_event(_encode({**base, "choices": [], "usage": doc.usage}))
    yield DONE
