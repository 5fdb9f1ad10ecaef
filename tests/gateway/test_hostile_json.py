"""Deeply nested JSON in correctly signed or keyed requests (issue 11, item 9): a 4xx in each
surface's own error shape, never a 500, a RecursionError or a traceback in the log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from gateway.records.apps import AppIn
from tests.support import discord_interactions as discord
from tests.support.gateway import Running, admin_headers, make_settings, running_app
from tests.support.webhooks import signed_headers as webhook_headers

pytestmark = pytest.mark.anyio

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DISCORD_KEY = discord.new_key()

# json.loads raises RecursionError on the first; the second parses, but nests far past any real payload.
RECURSING = b'{"type":' * 5000 + b"1" + b"}" * 5000
TOO_DEEP = b'{"type": "event_callback", "event": ' + b"[" * 200 + b"]" * 200 + b"}"
BODIES = [pytest.param(RECURSING, id="recursing"), pytest.param(TOO_DEEP, id="too-deep")]


@pytest.fixture
async def running(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Running]:
    async with running_app(make_settings(tmp_path), run_workers=False) as r:
        await r.gateway.apps.add(
            AppIn(name="demo", base_url="http://dify.test/v1", api_key=SecretStr("app-k"), mode="chat")
        )
        caplog.set_level(logging.INFO)
        yield r
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


async def endpoint(running: Running, plugin: str, settings: dict[str, str]) -> tuple[str, dict[str, str]]:
    _, url, shown = await running.gateway.endpoints.create_with_secrets(plugin, ["demo"], settings)
    return running.path(url), shown


def slack_headers(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    signature = SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"content-type": "application/json", "x-slack-request-timestamp": ts, "x-slack-signature": signature}


def assert_gateway_error(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"
    assert "Traceback" not in response.text


@pytest.mark.parametrize("body", BODIES)
async def test_slack(running: Running, body: bytes) -> None:
    path, _ = await endpoint(running, "slack", {"signing_secret": SLACK_SECRET})
    assert_gateway_error(await running.client.post(path, content=body, headers=slack_headers(body)))


@pytest.mark.parametrize("body", BODIES)
async def test_discord(running: Running, body: bytes) -> None:
    settings = {"application_id": discord.APPLICATION_ID, "public_key": discord.public_key_hex(DISCORD_KEY)}
    path, _ = await endpoint(running, "discord", settings)
    headers = discord.signed_headers(DISCORD_KEY, body)
    assert_gateway_error(await running.client.post(path, content=body, headers=headers))


@pytest.mark.parametrize("body", BODIES)
async def test_webhook(running: Running, body: bytes) -> None:
    path, shown = await endpoint(running, "webhook", {})
    headers = webhook_headers(shown["secret"], body)
    assert_gateway_error(await running.client.post(path, content=body, headers=headers))


@pytest.mark.parametrize("body", BODIES)
async def test_openai_answers_in_openai_shape(running: Running, body: bytes) -> None:
    path, shown = await endpoint(running, "openai", {})
    headers = {"authorization": f"Bearer {shown['api_key']}", "content-type": "application/json"}
    response = await running.client.post(path + "/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "nests deeper" in error["message"] or "not valid JSON" in error["message"]


async def test_inputs_nested_past_the_bound_are_refused_before_any_work(running: Running) -> None:
    # Parses with json.loads and pydantic alike, so it would be stored and sent to Dify.
    inputs: object = "x"
    for _ in range(100):
        inputs = {"a": inputs}
    body = json.dumps({"query": "q", "user": "u", "inputs": inputs}).encode()
    path, shown = await endpoint(running, "webhook", {})
    response = await running.client.post(path, content=body, headers=webhook_headers(shown["secret"], body))
    assert_gateway_error(response)
    assert "64 levels" in response.json()["error"]["message"]
    assert await running.gateway.store.job_list() == []


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("path", ["/admin/api/endpoints", "/admin/api/apps"])
async def test_admin_api(running: Running, body: bytes, path: str) -> None:
    response = await running.client.post(path, content=body, headers=admin_headers())
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] in ("bad_request", "validation_failed")
