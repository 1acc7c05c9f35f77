"""Tells a test that `post_response` has run for a request (listed after the plugins
under test, so theirs has run too): sets `FINISHED[tenant]` when the test made one."""

from interlock.core import Plugin, RequestContext, hookimpl
from tests.plugins.policy import FINISHED


class Probe(Plugin):
    name = "test_probe"

    @hookimpl
    def post_response(self, ctx: RequestContext) -> None:
        if ctx.identity is not None and ctx.identity.tenant in FINISHED:
            FINISHED[ctx.identity.tenant].set()
