"""Small asyncio clients for what wrk does not measure: paced latency on one connection
(time to first byte and total, streamed or not), many concurrent streams, and a burst of
requests sent at once.

`python -m bench.loadgen latency URL --rate 200 --seconds 5 [--stream]`
`python -m bench.loadgen streams URL --n 1000`
`python -m bench.loadgen burst URL --n 5000 --connections 500`
Each prints one JSON object on stdout. `--key K` sends `Authorization: Bearer K` (a
virtual key) instead of the benchmark's client key; `--body FILE` sends FILE's JSON
instead of the benchmark's chat request (its stream twin adds `stream`).
"""

import argparse
import asyncio
import sys
import time

import aiohttp
import msgspec

from bench.payloads import EVENTS, REQUEST, encoded

HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-client"}


def stream_body(body: dict) -> bytes:
    return encoded({**body, "stream": True, "stream_options": {"include_usage": True}})


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def latency(url: str, rate: float, seconds: float, stream: bool, request: dict) -> dict:
    """One connection, one request every 1/rate s: the time the server adds, not queueing."""
    body = stream_body(request) if stream else encoded(request)
    connector = aiohttp.TCPConnector(limit=1)
    ttfb: list[float] = []
    total: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):  # warm the connection and the server's caches
            async with session.post(url, data=body, headers=HEADERS) as resp:
                await resp.read()
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=HEADERS) as resp:
                    first = await resp.content.readany()
                    t1 = time.perf_counter()
                    while await resp.content.readany():
                        pass
                    t2 = time.perf_counter()
                    if resp.status != 200 or not first:
                        errors += 1
                        continue
            except aiohttp.ClientError:
                errors += 1
                continue
            ttfb.append((t1 - t0) * 1000)
            total.append((t2 - t0) * 1000)
    return {
        "requests": len(total),
        "errors": errors,
        "ttfb_p50_ms": percentile(ttfb, 50),
        "ttfb_p99_ms": percentile(ttfb, 99),
        "p50_ms": percentile(total, 50),
        "p99_ms": percentile(total, 99),
    }


async def streams(url: str, n: int, request: dict) -> dict:
    """`n` streams at once; counts errors and events lost (each should carry EVENTS)."""
    body = stream_body(request)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> tuple[int, float]:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=HEADERS) as resp:
                if resp.status != 200:
                    return -1, 0.0
                data = await resp.read()
            return data.count(b"data: "), (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        wall = time.perf_counter() - t0
    errors = sum(1 for r in results if isinstance(r, BaseException) or r[0] < 0)
    ok = [r for r in results if not isinstance(r, BaseException) and r[0] >= 0]
    lost = sum(EVENTS - r[0] for r in ok)
    durations = [r[1] for r in ok]
    return {
        "streams": n,
        "errors": errors,
        "events_lost": lost,
        "wall_s": wall,
        "stream_p50_ms": percentile(durations, 50),
        "stream_p99_ms": percentile(durations, 99),
    }


async def burst(url: str, n: int, connections: int, request: dict) -> dict:
    """`n` requests sent at once over at most `connections` connections: errors, how long
    the whole burst took, and each request's time."""
    body = encoded(request)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> float:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=HEADERS) as resp:
                await resp.read()
                if resp.status != 200:
                    return -1.0
            return (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        wall = time.perf_counter() - t0
    ok = [r for r in results if isinstance(r, float) and r >= 0]
    return {
        "requests": n,
        "errors": n - len(ok),
        "wall_s": wall,
        "p50_ms": percentile(ok, 50),
        "p99_ms": percentile(ok, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["latency", "streams", "burst"])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--key", help="the Bearer key to send (a virtual key)")
    parser.add_argument("--body", help="a JSON file: the request to send")
    args = parser.parse_args()
    if args.key:
        HEADERS["authorization"] = f"Bearer {args.key}"
    request = REQUEST
    if args.body:
        with open(args.body, "rb") as f:
            request = msgspec.json.decode(f.read())
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if args.mode == "latency":
        result = runner(latency(args.url, args.rate, args.seconds, args.stream, request))
    elif args.mode == "streams":
        result = runner(streams(args.url, args.n, request))
    else:
        result = runner(burst(args.url, args.n, args.connections, request))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
