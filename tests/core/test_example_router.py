"""The README's custom-router walkthrough: examples/length_router.py really routes."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.core.test_proxy_openai import COMPLETION, config
from tests.support import Reply, run_gateway

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "length_router.py"


async def test_length_router_sends_short_prompts_to_the_small_model(
    upstream, tmp_path: Path
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json(COMPLETION))
    toml = (
        config(url)
        + f'''
[plugins.length_router]
path = "{EXAMPLE}"
small = "gpt-4o-mini"
large = "gpt-4o"
threshold_chars = 200
'''
    )
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        short = [{"role": "user", "content": "hi"}]
        long = [{"role": "user", "content": "x" * 500}]
        for messages in (short, long):
            resp = await client.post(
                f"{gw}/v1/chat/completions", json={"model": "auto", "messages": messages}
            )
            assert resp.status_code == 200
        # Other models are not its business.
        await client.post(f"{gw}/v1/chat/completions", json={"model": "gpt-4o", "messages": short})
    assert [r.json()["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o", "gpt-4o"]
