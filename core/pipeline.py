"""One request through the hooks: route, policy, forward with failover, settle.

The plans are tuples frozen at start-up (`plugins.HookPlans`); this module loops over
them and awaits only what is awaitable. It never touches pluggy, never logs per hook,
and never reads the request body beyond what the inbound format decoded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from .context import Attempt, Candidate, ReadyResponse, RequestContext, RoutingDecision
from .errors import GatewayError, UpstreamError, retry_after_s
from .plugins import HookPlans
from .pricing import Pricing
from .providers.base import Provider, ProviderReply
from .replay import replay
from .wire import adapt_body

__all__ = ["Pipeline", "StreamHandle"]

T = TypeVar("T")


class StreamHandle:
    """An opened stream: `events` to send (the outermost `wrap_stream` layer), and every
    layer beneath it down to the provider's own iterator. `aclose` closes each layer,
    outermost first and the provider's last, so a middle layer's `finally` has run
    before `post_response` (closing only the outermost would leave the rest to the
    garbage collector)."""

    __slots__ = ("events", "layers")

    def __init__(self, layers: list[AsyncIterator[bytes]]) -> None:
        self.layers = layers
        self.events = layers[-1]

    async def aclose(self) -> None:
        for layer in reversed(self.layers):
            await _aclose(layer)


class Pipeline:
    def __init__(
        self,
        plans: HookPlans,
        providers: Mapping[str, Provider],
        pricing: Pricing,
        logger: Any,
        request_log: Callable[[Any, dict[str, Any], str], None] | None = None,
    ) -> None:
        self.plans = plans
        self.providers = providers
        self.pricing = pricing
        self.logger = logger
        # The one line per request (LogSetup.request: the fast path of logger.info).
        self.request_log = request_log or (
            lambda lg, fields, level: getattr(lg, level)("request", **fields)
        )
        self._default_routes: dict[str, RoutingDecision | None] = {}

    # -- before forwarding ---------------------------------------------------------------
    async def prepare(self, ctx: RequestContext) -> None:
        """route, then pre_forward (pre_auth ran in the lifecycle, before the body was
        read); a GatewayError stops the request, a ReadyResponse ends pre_forward."""
        decision: RoutingDecision | None = None
        for fn, _ in self.plans.route:
            decision = fn(ctx)
            if decision is not None:
                # A copy: a router may return one cached decision for every request.
                decision = RoutingDecision(list(decision.candidates), decision.reason)
                break
        ctx.decision = decision if decision is not None else self.default_route(ctx.requested_model)
        for fn, is_async in self.plans.pre_forward:
            result = fn(ctx)
            if is_async:
                await result
            if ctx.response is not None:
                return
        if not ctx.decision.candidates:
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
        """Try the candidates in order within the request's one deadline, one Attempt
        each, `on_attempt` after each; a retryable UpstreamError moves on, any other
        error stops, the first success is the answer. The candidate list is read afresh
        after every attempt: `on_attempt` may drop a failing provider's other entries."""
        assert ctx.decision is not None
        loop_time = asyncio.get_running_loop().time
        last: GatewayError | None = None
        tried: list[Candidate] = []
        while (candidate := _untried(ctx.decision.candidates, tried)) is not None:
            tried.append(candidate)
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
                await self._on_attempt(ctx, attempt)
                continue
            if loop_time() >= ctx.deadline:
                attempt.status = 504
                attempt.error = "deadline_exceeded"
                await self._on_attempt(ctx, attempt)
                raise _deadline_error(ctx)
            if ctx.inbound != "openai":  # Anthropic or Responses: native or translated
                adapt_body(ctx, provider)
            start = time.perf_counter()
            ctx.attempting = True  # the disconnect sweeper enforces ctx.deadline now
            try:
                result = await call(provider, ctx, candidate.model)
            except UpstreamError as err:
                attempt.status = err.status
                attempt.error = err.type
                attempt.retryable = err.retryable
                attempt.retry_after_s = retry_after_s(err.headers)
                attempt.latency_ms = (time.perf_counter() - start) * 1000
                await self._on_attempt(ctx, attempt)
                last = err
                if err.retryable:
                    continue
                raise
            except asyncio.CancelledError:
                if not ctx.expired:
                    raise
                _uncancel()
                attempt.status = 504
                attempt.error = "deadline_exceeded"
                attempt.latency_ms = (time.perf_counter() - start) * 1000
                await self._on_attempt(ctx, attempt)
                raise _deadline_error(ctx) from None
            finally:
                ctx.attempting = False
            attempt.status = 200
            attempt.latency_ms = (time.perf_counter() - start) * 1000
            ctx.provider = candidate.provider
            ctx.model = candidate.model
            ctx.status = 200
            await self._on_attempt(ctx, attempt)
            return result
        raise last or GatewayError(503, "no_candidates", "no candidate could be tried")

    async def _on_attempt(self, ctx: RequestContext, attempt: Attempt) -> None:
        for fn, is_async in self.plans.on_attempt:
            try:
                result = fn(ctx, attempt)
                if is_async:
                    await result
            except Exception as exc:
                self._hook_failed("on_attempt", ctx, fn, exc)

    async def complete(self, ctx: RequestContext) -> bytes:
        """A non-streamed answer (chat or embeddings), after `transform_response`."""
        ready = ctx.response
        if ready is not None:
            _answer_with(ctx, ready)
            return ready.body
        call = _embeddings if ctx.endpoint == "embeddings" else _chat
        body = (await self._failover(ctx, call)).body
        for fn, is_async in self.plans.transform_response:
            result = fn(ctx, body)
            if is_async:
                result = await result
            if result is not None:
                body = result
        return body

    async def open_stream(self, ctx: RequestContext) -> StreamHandle:
        """Open a stream and read its first event; a retryable failure before that event
        (nothing has reached the client yet) moves on to the next candidate."""
        ready = ctx.response
        if ready is not None:
            _answer_with(ctx, ready)
            return self._wrapped(ctx, replay(ready.body, ctx.include_usage))
        start = time.perf_counter()
        first, stream = await self._failover(ctx, _open_stream)
        ctx.timings["upstream_first_event_ms"] = (time.perf_counter() - start) * 1000
        handle = self._wrapped(ctx, _prepend(first, stream))
        handle.layers.insert(0, stream)
        return handle

    def _wrapped(self, ctx: RequestContext, events: AsyncIterator[bytes]) -> StreamHandle:
        layers = [events]
        for fn, _ in self.plans.wrap_stream:
            wrapped = fn(ctx, layers[-1])
            if wrapped is not None:
                layers.append(wrapped)
        return StreamHandle(layers)

    # -- after the last byte -----------------------------------------------------------------
    async def finish(self, ctx: RequestContext) -> None:
        """Price the request, run post_response (every plugin, whatever the others do),
        and write the one log line."""
        model = ctx.model
        if model:
            pricing = self.pricing
            provider = self.providers.get(ctx.provider or "")
            if provider is not None and pricing.price(model) is None:
                model = provider.upstream_model(model)  # an alias: price the real model
            ctx.cost_usd = pricing.cost(model, ctx.usage)
        for fn, is_async in self.plans.post_response:
            try:
                result = fn(ctx)
                if is_async:
                    await result
            except Exception as exc:
                self._hook_failed("post_response", ctx, fn, exc)
        self.log(ctx)

    def _hook_failed(self, hook: str, ctx: RequestContext, fn: Any, exc: Exception) -> None:
        self.logger.error(
            f"{hook}_failed",
            request_id=ctx.request_id,
            hook=getattr(fn, "__qualname__", repr(fn)),
            error=repr(exc),
        )

    def log(self, ctx: RequestContext) -> None:
        usage = ctx.usage
        err = ctx.error
        last = ctx.attempts[-1] if ctx.attempts else None
        latency = ctx.timings.get("latency_ms")
        self.request_log(
            self.logger,
            dict(
                request_id=ctx.request_id,
                status=ctx.status,
                inbound=ctx.inbound,
                endpoint=ctx.endpoint,
                stream=ctx.stream,
                requested_model=ctx.requested_model or None,
                model=ctx.model or (last.model if last else None),
                provider=ctx.provider or (last.provider if last else None),
                tenant=ctx.identity.tenant if ctx.identity else None,
                attempts=len(ctx.attempts),
                upstream_status=last.status if last else None,
                route_reason=ctx.decision.reason if ctx.decision else None,
                latency_ms=round(latency if latency is not None else ctx.elapsed_ms(), 3),
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
            "warning" if ctx.status >= 500 else "info",
        )


def _answer_with(ctx: RequestContext, ready: ReadyResponse) -> None:
    """A plugin's ReadyResponse becomes the answer: its status, its headers, and a body
    in the canonical format (rendered for the caller like any other answer)."""
    ctx.wire = "openai"
    ctx.status = ready.status
    for name, value in ready.headers.items():
        ctx.add_header(name.lower(), value)


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _untried(candidates: list[Candidate], tried: list[Candidate]) -> Candidate | None:
    """The first candidate not tried yet. `on_attempt` may edit the list between tries
    (in place, or by assigning a new one, tried entries kept or not), so it is searched
    afresh each time rather than walked by index; a candidate listed k times counts as
    tried once it has been tried k times."""
    if not tried:
        return candidates[0] if candidates else None
    left = list(tried)
    for candidate in candidates:
        if candidate in left:
            left.remove(candidate)
        else:
            return candidate
    return None


def _deadline_error(ctx: RequestContext) -> GatewayError:
    return GatewayError(
        504,
        "deadline_exceeded",
        f"the request was not answered within its deadline ({len(ctx.attempts)} attempt(s))",
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
