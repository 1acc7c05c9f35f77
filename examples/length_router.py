"""A custom routing plugin in one file: requests for the model "auto" go to a small
model when the prompt is short and to a large one otherwise.

Enable it in plugins.toml, no packaging needed:

    [plugins.length_router]
    path = "./examples/length_router.py"
    threshold_chars = 2000
    small = "gpt-4o-mini"
    large = "gpt-4o"
"""

import msgspec

from interlock.core import Candidate, Plugin, RequestContext, RoutingDecision, hookimpl


class LengthRouter(Plugin):
    name = "length_router"

    class Config(msgspec.Struct, forbid_unknown_fields=True):
        small: str
        large: str
        threshold_chars: int = 2000
        provider: str | None = None  # None: the first provider that lists the model

    @hookimpl
    def route(self, ctx: RequestContext) -> RoutingDecision | None:
        if ctx.requested_model != "auto":
            return None  # not ours: let the next router (or the default) decide
        size = sum(len(m) for m in ctx.body.messages)  # raw JSON bytes: no decoding
        model = self.config.small if size <= self.config.threshold_chars else self.config.large
        provider = self.config.provider or next(
            (p.name for p in self.services.providers.values() if p.serves(model)), ""
        )
        return RoutingDecision([Candidate(provider, model)], f"{size} chars -> {model}")
