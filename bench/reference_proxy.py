"""The 40-line reference proxy: Starlette + one upstream client, no hooks, no config.

Run on the same servers as Interlock in the same bench run, so the cost of Interlock's
own machinery is a ratio. $BENCH_UPSTREAM is the upstream base URL; $BENCH_CLIENT is
`aiohttp`, `httpx` or `httpx-aiohttp`.
"""

import contextlib
import os

import httpx
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9101/v1") + "/chat/completions"
CLIENT = os.environ.get("BENCH_CLIENT", "aiohttp")
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
pool: list = []


@contextlib.asynccontextmanager
async def lifespan(app):
    if CLIENT == "aiohttp":
        import aiohttp

        pool.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)))
    else:
        transport = None
        if CLIENT == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport()
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
        pool.append(httpx.AsyncClient(transport=transport, limits=limits, timeout=600))
    yield
    await (pool[0].close() if CLIENT == "aiohttp" else pool[0].aclose())


async def chat(request):
    body = await request.body()
    stream = b'"stream":true' in body
    if CLIENT == "aiohttp":
        resp = await pool[0].post(UPSTREAM, data=body, headers=HEADERS)
        media = resp.headers.get("content-type", "application/json")
        if not stream:
            data = await resp.read()
            return Response(data, resp.status, media_type=media)
        return StreamingResponse(resp.content.iter_any(), resp.status, media_type=media)
    req = pool[0].build_request("POST", UPSTREAM, content=body, headers=HEADERS)
    resp = await pool[0].send(req, stream=stream)
    media = resp.headers.get("content-type", "application/json")
    if not stream:
        return Response(resp.content, resp.status_code, media_type=media)
    return StreamingResponse(resp.aiter_raw(), resp.status_code, media_type=media)


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)
