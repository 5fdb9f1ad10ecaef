"""The Telegram plugin's live stack: the gateway, the Dify simulator and the fake Bot API, each on a
real uvicorn; updates built as Telegram sends them and posted with the webhook's secret token."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.testing.platforms.telegram import TOKEN, FakeTelegram
from gateway.testing.signing import telegram_request
from tests.support.gateway import admin_headers, live_app, live_server, make_settings

SECRET = "webhook-secret-for-tests"


@dataclass
class TelegramStack:
    client: httpx.AsyncClient
    gateway: str
    fake: FakeTelegram
    simulator: str

    async def endpoint(self, **settings: Any) -> tuple[str, str]:
        """A telegram endpoint bound to the simulator app, talking to the fake; (its id, its URL)."""
        values = {
            "bot_token": TOKEN,
            "secret_token": SECRET,
            "api_base_url": self.fake.base,
            "edit_interval": 0.2,
            "group_edit_interval": 0.5,
            **settings,
        }
        created = await self.client.post(
            f"{self.gateway}/admin/api/endpoints",
            json={"plugin": "telegram", "apps": ["support"], "settings": values},
            headers=admin_headers(),
        )
        assert created.status_code == 201, created.text
        return created.json()["id"], created.json()["url"]

    async def send(self, url: str, update: dict[str, Any]) -> httpx.Response:
        signed = telegram_request(SECRET, update)
        response = await self.client.post(url, content=signed.body, headers=signed.headers)
        assert response.status_code == 200, response.text
        return response

    async def jobs(self) -> list[dict[str, Any]]:
        listed = await self.client.get(f"{self.gateway}/admin/api/jobs", headers=admin_headers())
        jobs: list[dict[str, Any]] = listed.json()["jobs"]
        return jobs

    async def settled(self, count: int) -> list[dict[str, Any]]:
        """Wait until `count` jobs are done; them."""
        for _ in range(600):
            jobs = await self.jobs()
            if len(jobs) >= count and all(job["state"] in ("done", "dead") for job in jobs):
                return jobs
            await asyncio.sleep(0.05)
        raise AssertionError(f"jobs did not settle: {await self.jobs()}")

    async def sim_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.client.get(f"{self.simulator}/_sim/stats")).json()
        return stats


@contextlib.asynccontextmanager
async def telegram_stack(tmp_path: Path, config: SimulatorConfig | None = None) -> AsyncIterator[TelegramStack]:
    fake = FakeTelegram()
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
        yield TelegramStack(client, gateway, fake, simulator)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[TelegramStack]:
    async with telegram_stack(tmp_path) as running:
        yield running
