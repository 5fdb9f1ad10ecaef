"""The Slack plugin's live stack: the gateway, the Dify simulator and the fake Slack Web API, each
on a real uvicorn; requests signed with slack_sdk's `SignatureVerifier`."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.fake_slack import FakeSlack
from tests.support.gateway import admin_headers, live_app, live_server, make_settings

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"
TEAM = "T1"
_ids = itertools.count(1)


def signed(body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"x-slack-request-timestamp": ts, "x-slack-signature": signature}


def envelope(event: dict[str, Any], *, event_id: str | None = None, bot_user: str = "UBOT") -> dict[str, Any]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": "A1",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": bot_user, "is_bot": True}],
    }


def mention(text: str, *, channel: str = "C1", ts: str | None = None, thread_ts: str | None = None) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@UBOT> {text}",
        "ts": ts or f"1690000000.{next(_ids):06d}",
        "channel": channel,
        "team": TEAM,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message(text: str, *, channel: str, channel_type: str, **extra: Any) -> dict[str, Any]:
    event = {
        "type": "message",
        "user": "U1",
        "text": text,
        "ts": f"1690000000.{next(_ids):06d}",
        "channel": channel,
        "channel_type": channel_type,
        "team": TEAM,
    }
    return {**event, **extra}


@dataclass
class SlackStack:
    client: httpx.AsyncClient
    gateway: str
    fake: FakeSlack
    simulator: str

    async def endpoint(self, **settings: Any) -> str:
        """A slack endpoint bound to the simulator app, talking to the fake Slack; its URL."""
        values = {
            "signing_secret": SIGNING_SECRET,
            "bot_token": BOT_TOKEN,
            "api_base_url": self.fake.api_url,
            "edit_interval": 0.1,
            **settings,
        }
        created = await self.client.post(
            f"{self.gateway}/admin/api/endpoints",
            json={"plugin": "slack", "apps": ["support"], "settings": values},
            headers=admin_headers(),
        )
        assert created.status_code == 201, created.text
        url: str = created.json()["url"]
        return url

    async def deliver(
        self, url: str, body: dict[str, Any], *, retry: int | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        raw = json.dumps(body).encode()
        extra = {"content-type": "application/json", **signed(raw)}
        if retry is not None:
            extra |= {"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"}
        return await self.client.post(url, content=raw, headers={**extra, **(headers or {})})

    async def command(self, url: str, text: str, response_url: str, **fields: str) -> httpx.Response:
        form = {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "acme",
            "channel_id": "C9",
            "channel_name": "general",
            "user_id": "U1",
            "user_name": "ana",
            "command": "/ask",
            "text": text,
            "api_app_id": "A1",
            "response_url": response_url,
            "trigger_id": f"13345224609.{next(_ids)}",
            **fields,
        }
        raw = urlencode(form).encode()
        headers = {"content-type": "application/x-www-form-urlencoded", **signed(raw)}
        return await self.client.post(url, content=raw, headers=headers)

    async def sim_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.client.get(f"{self.simulator}/_sim/stats")).json()
        return stats


async def create_slack_endpoint(
    client: httpx.AsyncClient, base: str, simulator: str, fake: FakeSlack, **settings: Any
) -> str:
    """On the gateway process at `base`: the simulator's app `support` and a slack endpoint bound
    to it that talks to `fake`; the endpoint's URL."""
    app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "chat"}
    assert (await client.post(f"{base}/admin/api/apps", json=app, headers=admin_headers())).status_code == 201
    values = {"signing_secret": SIGNING_SECRET, "bot_token": BOT_TOKEN, "api_base_url": fake.api_url, **settings}
    created = await client.post(
        f"{base}/admin/api/endpoints",
        json={"plugin": "slack", "apps": ["support"], "settings": values},
        headers=admin_headers(),
    )
    assert created.status_code == 201, created.text
    url: str = created.json()["url"]
    return url


@contextlib.asynccontextmanager
async def slack_stack(tmp_path: Path, config: SimulatorConfig | None = None) -> AsyncIterator[SlackStack]:
    fake = FakeSlack(token=BOT_TOKEN)
    config = config or SimulatorConfig(first_token_latency=0.05, tokens_per_second=40)
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(fake.app()) as fake_base,
        live_app(lambda url: create_app(make_settings(tmp_path, public_url=url, rate_limit_per_minute=0))) as gateway,
        httpx.AsyncClient(timeout=30) as client,
    ):
        fake.base = fake_base
        app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": config.mode}
        added = await client.post(f"{gateway}/admin/api/apps", json=app, headers=admin_headers())
        assert added.status_code == 201, added.text
        yield SlackStack(client, gateway, fake, simulator)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API alone, on a real server, for tests of the plugin's Slack calls."""
    fake = FakeSlack(token=BOT_TOKEN)
    async with live_server(fake.app()) as base:
        fake.base = base
        yield fake
        fake.outages.clear()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[SlackStack]:
    async with slack_stack(tmp_path) as running:
        yield running
