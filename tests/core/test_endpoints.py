"""The small endpoints, embeddings, cost, and the request log line (no keys, no prompts)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import msgspec
import pytest

from interlock.core.context import Usage
from interlock.core.pricing import Pricing
from tests.core.test_proxy_openai import COMPLETION, config
from tests.support import GUARD, Reply, run_gateway

MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["mock-a", "mock-b"]\n'


async def test_models_healthz_readyz(tmp_path: Path) -> None:
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        models = (await client.get(f"{gw}/v1/models")).json()
        assert models["object"] == "list"
        assert [m["id"] for m in models["data"]] == ["mock-a", "mock-b"]
        assert (await client.get(f"{gw}/healthz")).json() == {"status": "ok"}
        ready = await client.get(f"{gw}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {
            "store": True,
            "providers": True,
        }


async def test_readyz_is_503_without_providers(tmp_path: Path) -> None:
    async with run_gateway("", tmp_path) as gw, httpx.AsyncClient() as client:
        ready = await client.get(f"{gw}/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["providers"] is False


async def test_embeddings_pass_through_with_usage(upstream, tmp_path: Path) -> None:
    fake, url = upstream
    doc = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    fake.on("/v1/embeddings", lambda r: Reply.json(doc))
    toml = config(url).replace('"gpt-4o-mini"]', '"gpt-4o-mini", "text-embedding-3-small"]')
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(
            f"{gw}/v1/embeddings",
            json={"model": "text-embedding-3-small", "input": "hello", "dimensions": 2},
        )
        bad = await client.post(f"{gw}/v1/embeddings", json={"model": "text-embedding-3-small"})
    assert resp.json() == doc
    assert fake.requests[0].json()["dimensions"] == 2
    assert bad.status_code == 400 and "`input`" in bad.json()["error"]["message"]


def test_pricing_from_prices_toml_with_overrides() -> None:
    from interlock.core.config import PriceOverride

    pricing = Pricing({"my-model": PriceOverride(input=1.0, output=2.0)})
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, cached_tokens=400_000)
    # gpt-4o: 2.50 in, 1.25 cached in, 10.00 out per million
    assert pricing.cost("gpt-4o", usage) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 10.0)
    assert pricing.cost("gpt-4o-2024-08-06", usage) == pricing.cost("gpt-4o", usage)
    assert pricing.cost("openai/gpt-4o-mini", usage) == pytest.approx(
        0.6 * 0.15 + 0.4 * 0.075 + 0.6
    )
    assert pricing.cost("my-model", usage) == pytest.approx(1.0 + 2.0)
    assert pricing.cost("unknown-model", usage) == 0.0
    sonnet = Usage(
        prompt_tokens=1_000_000,
        completion_tokens=0,
        cached_tokens=200_000,
        cache_write_tokens=300_000,
    )
    assert pricing.cost("claude-sonnet-4-5", sonnet) == pytest.approx(
        0.5 * 3.0 + 0.2 * 0.30 + 0.3 * 3.75
    )


async def test_request_log_line_has_usage_and_cost_and_no_secrets(
    upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    secret_prompt = "my social security number is 078-05-1120"
    async with run_gateway(config(url), tmp_path) as gw, httpx.AsyncClient() as client:
        await client.post(
            f"{gw}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": secret_prompt}]},
            headers={"authorization": "Bearer sk-virtual-canary-9999", "x-request-id": "req-42"},
        )
    out = capsys.readouterr().out
    lines = [msgspec.json.decode(line) for line in out.splitlines() if line.startswith("{")]
    request = next(line for line in lines if line.get("event") == "request")
    assert request["request_id"] == "req-42"
    assert request["status"] == 200 and request["provider"] == "up" and request["model"] == "gpt-4o"
    assert (request["prompt_tokens"], request["completion_tokens"], request["cached_tokens"]) == (
        11,
        7,
        3,
    )
    assert request["cost_usd"] == pytest.approx((8 * 2.5 + 3 * 1.25 + 7 * 10.0) / 1e6)
    for canary in ("sk-test-upstream-key-0000", "sk-virtual-canary-9999", "078-05-1120"):
        assert canary not in out


def test_redactor_replaces_configured_secrets() -> None:
    from interlock.core.logging import Redactor, configure_logging, get_logger

    stream = io.BytesIO()
    setup = configure_logging("json", "info", Redactor(["sk-live-abcdef"]), stream=stream)
    get_logger().info("oops", detail="key sk-live-abcdef leaked", authorization="Bearer x")
    setup.drain()
    line = msgspec.json.decode(stream.getvalue().splitlines()[-1])
    assert line["detail"] == "key [redacted] leaked" and line["authorization"] == "[redacted]"
    assert setup.redactor.secrets == {"sk-live-abcdef"}
    configure_logging("json", "info")


async def test_log_writes_never_block_the_caller() -> None:
    """A stalled log consumer (a full pipe) must not stall the request path."""
    import threading

    from interlock.core.logging import BackgroundWriter

    release = threading.Event()
    written: list[bytes] = []

    class StuckPipe:
        def write(self, data: bytes) -> None:
            release.wait(GUARD)
            written.append(data)

        def flush(self) -> None:
            pass

    writer = BackgroundWriter(StuckPipe())

    def log_a_burst() -> None:
        for i in range(1000):
            writer.write(b"line %d\n" % i)  # returns at once although the pipe is stuck

    try:
        # A writer that blocked would hold this thread in the stuck pipe: the guard turns
        # that into a failure instead of a hang.
        await asyncio.wait_for(asyncio.to_thread(log_a_burst), GUARD)
        assert written == []
    finally:
        release.set()
    writer.close()
    assert b"".join(written) == b"".join(b"line %d\n" % i for i in range(1000))
