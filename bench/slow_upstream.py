"""A slow-streaming OpenAI-format upstream: the 21 events, one every --delay-ms.

For the 1,000-concurrent-streams scenario: each stream stays open about 21 x delay, so
a thousand of them are in flight through the gateway at once. aiohttp's server, not
nginx, because nginx cannot pace a response.
"""

import argparse
import asyncio

from aiohttp import web

from bench.payloads import COMPLETION, encoded, sse_events


def make_app(delay: float) -> web.Application:
    events = sse_events()
    body = encoded(COMPLETION)

    async def chat(request: web.Request) -> web.StreamResponse:
        payload = await request.read()
        if b'"stream":true' not in payload:
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:
            await asyncio.sleep(delay)
            await resp.write(event)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    args = parser.parse_args()
    web.run_app(
        make_app(args.delay_ms / 1000),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
