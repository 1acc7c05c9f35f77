"""What a counters primitive costs: `python -m bench.counters [--redis redis://127.0.0.1:6379/0]`.

Memory: median µs per `rate` and `reserve` call (batches of calls awaited one after
another in one loop). Redis on loopback: median µs per call awaited alone (one round
trip), and calls per second with 64 in flight on one pool. Keys are under a random
prefix and removed afterwards. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from interlock.core.counters import Counters, open_counters

BATCH = 1000


async def _median_us(call: Callable[[int], Awaitable[object]], batches: int) -> float:
    per_call: list[float] = []
    for b in range(batches):
        start = time.perf_counter_ns()
        for i in range(BATCH):
            await call(b * BATCH + i)
        per_call.append((time.perf_counter_ns() - start) / BATCH / 1000)
    return statistics.median(per_call)


async def _throughput(call: Callable[[int], Awaitable[object]], total: int, width: int) -> float:
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return total / (time.perf_counter() - start)


def _calls(c: Counters) -> dict[str, Callable[[int], Awaitable[object]]]:
    return {
        # 1,000 tenants' keys, limits high enough that most calls are allowed and write
        "rate": lambda i: c.rate(f"bench:rate:{i % 1000}", 1_000_000, 60.0),
        "reserve": lambda i: c.reserve(f"bench:budget:{i % 1000}", 0.001, 1e12),
        "incr": lambda i: c.incr(f"bench:n:{i % 1000}", 1.0, ttl_s=60.0),
        "claim": lambda i: c.claim(f"bench:probe:{i % 1000}", "x", ttl_s=60.0),
    }


async def main(redis_url: str | None) -> None:
    memory = await open_counters("memory://")
    for name, call in _calls(memory).items():
        print(f"memory  {name:8} {await _median_us(call, 50):8.2f} µs/call (median)")
    if redis_url is None:
        return
    prefix = f"bench-{uuid.uuid4().hex}:"
    redis = await open_counters(redis_url, prefix=prefix)
    try:
        for name, call in _calls(redis).items():
            alone = await _median_us(call, 5)
            rate = await _throughput(call, 20_000, 64)
            print(
                f"redis   {name:8} {alone:8.1f} µs/call alone   {rate:9.0f} calls/s at 64 in flight"
            )
    finally:
        for name in ("rate", "budget", "n", "probe"):
            for i in range(1000):
                await redis.delete(f"bench:{name}:{i}")
        await redis.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="also measure Redis at URL")
    args = parser.parse_args()
    asyncio.run(main(args.redis))
