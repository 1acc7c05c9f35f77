"""A trivial plugin on each of the four per-request hooks: what the hook machinery costs.

Each hook does the least a real plugin does (read the context, write one value), so the
difference between (c) and (c') is the price of calling four hooks, not of their work.
"""

from interlock.core import Plugin, RequestContext, hookimpl


class Trivial(Plugin):
    name = "trivial"

    @hookimpl
    async def pre_auth(self, ctx: RequestContext) -> None:
        ctx.state["trivial"] = ctx.requested_model

    @hookimpl
    def route(self, ctx: RequestContext) -> None:
        return None  # no opinion: the default route serves the request

    @hookimpl
    async def pre_forward(self, ctx: RequestContext) -> None:
        ctx.tags.setdefault("bench", "1")

    @hookimpl
    async def post_response(self, ctx: RequestContext) -> None:
        ctx.state.pop("trivial", None)
