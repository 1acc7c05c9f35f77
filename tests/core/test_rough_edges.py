"""What a new user met on a first try: non-JSON bodies, an empty model list, and log lines
of failed requests that did not say where the request went."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.core.test_proxy_openai import config
from tests.support import Reply, run_gateway

HI = [{"role": "user", "content": "hi"}]
MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\nmodels = ["*"]\n'


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_body_that_is_not_json_is_a_415_in_the_callers_shape(
    tmp_path: Path, path: str, content_type: str
) -> None:
    body = msgspec.json.encode({"model": "m", "max_tokens": 5, "messages": HI})
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(f"{gw}{path}", content=body, headers={"content-type": content_type})
    assert resp.status_code == 415
    error = resp.json()
    if path == "/v1/messages":
        assert error["type"] == "error" and "application/json" in error["error"]["message"]
    else:
        assert "application/json" in error["error"]["message"]


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8"])
async def test_json_and_a_missing_content_type_are_accepted(
    tmp_path: Path, content_type: str | None
) -> None:
    body = msgspec.json.encode({"model": "m", "messages": HI})
    headers = {"content-type": content_type} if content_type else {}
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        request = client.build_request("POST", f"{gw}/v1/chat/completions", content=body)
        request.headers.pop("content-type", None)
        request.headers.update(headers)
        resp = await client.send(request)
    assert resp.status_code == 200, resp.text


async def test_models_lists_configured_and_priced_models_on_the_default_config(
    tmp_path: Path,
) -> None:
    toml = (
        '[[providers]]\nname = "local"\nkind = "mock"\nmodels = ["my-local-model"]\n' + MOCK
    )
    async with run_gateway(toml, tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.get(f"{gw}/v1/models")
    data = resp.json()["data"]
    owners = {m["id"]: m["owned_by"] for m in data}
    assert owners["my-local-model"] == "local"
    # The catch-all mock answers every priced model, so clients that pick from the list work.
    assert owners["gpt-4o-mini"] == "mock" and owners["claude-sonnet-4-6"] == "mock"
    assert len(owners) == len(data)  # each model once


def _request_line(out: str) -> dict[str, Any]:
    lines = [msgspec.json.decode(line) for line in out.splitlines() if line.startswith("{")]
    return next(line for line in lines if line.get("event") == "request")


async def test_a_failed_request_logs_where_it_went_at_warning(
    upstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = upstream
    fake.on("/v1/chat/completions", lambda r: Reply.json({"error": {"message": "boom"}}, 500))
    async with run_gateway(config(url), tmp_path) as gw, httpx.AsyncClient() as client:
        resp = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI}
        )
    assert resp.status_code == 502
    line = _request_line(capsys.readouterr().out)
    assert line["level"] == "warning"
    assert (line["provider"], line["model"], line["upstream_status"]) == ("up", "gpt-4o", 502)
    assert line["route_reason"] == "default"
    assert line["error"] == "upstream_error"


async def test_a_successful_request_logs_at_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with run_gateway(MOCK, tmp_path) as gw, httpx.AsyncClient() as client:
        await client.post(f"{gw}/v1/chat/completions", json={"model": "m", "messages": HI})
    line = _request_line(capsys.readouterr().out)
    assert line["level"] == "info" and line["status"] == 200 and line["upstream_status"] == 200
