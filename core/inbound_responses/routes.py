"""`GET` and `DELETE /v1/responses/{id}`: one stored response, fetched or deleted.

A `resp_gw…` id is one the gateway answered by translation and keeps itself
(store.py), looked up for the caller's tenant only; any other id is OpenAI's,
and the request is forwarded to the first configured provider that speaks the Responses
API natively (`openai` or `azure`), with that provider's key. Under `/v1/`, so the
lifecycle has run `pre_auth` and will run `post_response`; errors are OpenAI's shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .store import is_gateway_id, not_found, tenant_of

if TYPE_CHECKING:
    from ..app import Gateway

__all__ = ["ResponsesRoutes"]

_encode = msgspec.json.Encoder().encode


class ResponsesRoutes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def handle(self, request: Request) -> Response:
        ctx = request.scope["interlock.ctx"]
        response_id: str = request.path_params["response_id"]
        method = request.method
        if is_gateway_id(response_id):
            store = self.gateway.responses
            tenant = tenant_of(ctx)
            if method == "DELETE":
                await store.delete(tenant, response_id)
                body = _encode({"id": response_id, "object": "response", "deleted": True})
            else:
                body = await store.get(tenant, response_id)
            return Response(body, media_type="application/json")
        for provider in self.gateway.providers.values():
            forward = getattr(provider, "responses_object", None)
            if forward is not None and "responses" in provider.wires:
                ctx.provider = provider.name
                status, body = await forward(ctx, method, response_id)
                return Response(body, status_code=status, media_type="application/json")
        raise not_found(response_id)
