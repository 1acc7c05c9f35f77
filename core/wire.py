"""Same format in, same format out: the body each attempt sends, in its provider's format.

An Anthropic-format request keeps the client's bytes (`ctx.wire == "anthropic"`) as
long as it is served by an `anthropic` provider: nothing is lost in a round trip
through the canonical shape. Only when an attempt goes to a provider of another wire
format is the (possibly plugin-edited) body translated to the canonical shape, and the
original kept, so a failover back to an `anthropic` provider sends the original again.
OpenAI-format requests are canonical already and never pass through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from .context import ChatHead, RequestContext
from .inbound_anthropic_request import canonical_request

if TYPE_CHECKING:
    from .providers.base import Provider

__all__ = ["adapt_body"]

_decode_head = msgspec.json.Decoder(ChatHead).decode
_ORIGINAL = "_wire_original"  # ctx.state key: the Anthropic body while ctx is canonical


def adapt_body(ctx: RequestContext, provider: Provider) -> None:
    """Put `ctx`'s body in the wire format `provider` speaks (Anthropic inbound only)."""
    native = provider.wire == "anthropic"
    if native and ctx.wire != "anthropic":
        raw, head = ctx.state.pop(_ORIGINAL)
        ctx.raw, ctx.body, ctx.overrides = raw, head, None
        ctx.wire = "anthropic"
        ctx.drop_payload()
    elif not native and ctx.wire == "anthropic":
        original = ctx.body_bytes()  # plugin edits applied
        canonical, _ = canonical_request(original)
        ctx.state[_ORIGINAL] = (original, ctx.body)
        ctx.raw, ctx.body, ctx.overrides = canonical, _decode_head(canonical), None
        ctx.body.stream = ctx.stream
        ctx.wire = "openai"
        ctx.drop_payload()
