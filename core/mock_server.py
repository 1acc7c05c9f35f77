"""The mock LLM as a standalone OpenAI-compatible server (`interlock mock-upstream`).

For demos and benchmarks: a real HTTP upstream on loopback that costs no money. It
shares its generator with the in-process `mock` provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .errors import GatewayError
from .providers.mock import (
    MockOptions,
    mock_call,
    mock_chunks,
    mock_completion,
    mock_embeddings,
)

__all__ = ["create_mock_app"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def _bad(message: str) -> Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }
    return Response(_encode(body), status_code=400, media_type="application/json")


def create_mock_app(options: MockOptions | None = None) -> Starlette:
    opts = options or MockOptions()

    async def chat(request: Request) -> Response:
        try:
            body = _decode(await request.body())
        except msgspec.DecodeError as exc:
            return _bad(f"invalid JSON: {exc}")
        messages, model = body.get("messages"), body.get("model")
        if not isinstance(messages, list) or not isinstance(model, str):
            return _bad("`model` and `messages` are required")
        try:
            call = mock_call(body)
        except GatewayError as err:
            return _bad(err.message)
        if opts.latency_ms:
            await asyncio.sleep(opts.latency_ms / 1000)
        if body.get("stream"):
            options = body.get("stream_options")
            include = isinstance(options, dict) and bool(options.get("include_usage"))
            events, _ = mock_chunks(model, messages, opts, include, call)

            async def paced() -> AsyncIterator[bytes]:
                for i, event in enumerate(events):
                    if opts.chunk_delay_ms and i:
                        await asyncio.sleep(opts.chunk_delay_ms / 1000)
                    yield event

            return StreamingResponse(paced(), media_type="text/event-stream")
        doc, _ = mock_completion(model, messages, opts, call)
        return Response(_encode(doc), media_type="application/json")

    async def embeddings(request: Request) -> Response:
        try:
            body = _decode(await request.body())
        except msgspec.DecodeError as exc:
            return _bad(f"invalid JSON: {exc}")
        doc, _ = mock_embeddings(str(body.get("model", "mock-embed")), body.get("input", ""))
        return Response(_encode(doc), media_type="application/json")

    async def models(request: Request) -> Response:
        return Response(
            _encode(
                {
                    "object": "list",
                    "data": [{"id": "mock-1", "object": "model", "created": 0, "owned_by": "mock"}],
                }
            ),
            media_type="application/json",
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
