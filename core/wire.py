"""Same format in, same format out: the body each attempt sends, in its provider's format.

A request in one of the non-canonical inbound formats (Anthropic Messages, OpenAI
Responses) keeps the client's bytes (`ctx.wire` is that format) as long as it is served
by a provider that speaks the format natively (`provider.wires`): nothing is lost in a
round trip through the canonical shape. Only when an attempt goes to a provider of
another wire format is the (possibly plugin-edited) body translated to the canonical
shape, and the original kept, so a failover back to a native provider sends the original
again. A Responses request is translated afresh when the next target differs in what it
can carry (Anthropic's prompt caching). OpenAI chat requests are canonical already and
never pass through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from .context import ChatHead, RequestContext
from .inbound_anthropic.request import canonical_request as anthropic_canonical
from .inbound_responses.request import canonical_request as responses_canonical

if TYPE_CHECKING:
    from .providers.base import Provider

__all__ = ["adapt_body"]

_decode_head = msgspec.json.Decoder(ChatHead).decode
# ctx.state key: (the original body, its decoded head, the flavour it was translated for)
# while ctx holds the canonical translation.
_ORIGINAL = "_wire_original"


def adapt_body(ctx: RequestContext, provider: Provider) -> None:
    """Put `ctx`'s body in the wire format `provider` speaks (non-OpenAI-chat inbound)."""
    inbound = ctx.inbound
    if inbound in provider.wires:
        if ctx.wire != inbound:
            raw, head, _ = ctx.state.pop(_ORIGINAL)
            ctx.raw, ctx.body, ctx.overrides = raw, head, None
            ctx.wire = inbound
            ctx.drop_payload()
        return
    flavour = "anthropic" if inbound == "responses" and "anthropic" in provider.wires else ""
    if ctx.wire == inbound:
        original, head = ctx.body_bytes(), ctx.body  # plugin edits applied
    else:
        original, head, translated_for = ctx.state[_ORIGINAL]
        if translated_for == flavour:
            return
    payload = None
    if inbound == "anthropic":
        canonical, _ = anthropic_canonical(original)
    else:
        canonical, payload = responses_canonical(ctx, original, cache=flavour == "anthropic")
    ctx.state[_ORIGINAL] = (original, head, flavour)
    ctx.raw, ctx.body, ctx.overrides = canonical, _decode_head(canonical), None
    ctx.body.stream = ctx.stream
    ctx.wire = "openai"
    ctx.drop_payload()
    if payload is not None:
        ctx._payload = payload  # the translation's own objects: no second decode
