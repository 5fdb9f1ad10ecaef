"""Two gateways sharing one real Redis: Telegram retrying one update (to either replica, at once)
makes one job and one answer, `update_id` being the job's key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp

from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.testing.platforms.telegram import TOKEN, FakeTelegram, message_update, user
from gateway.testing.signing import telegram_request
from tests.support.gateway import admin_headers, live_app, live_server, make_settings

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.redis]

SECRET = "replica-secret"


async def test_one_update_sent_to_two_replicas_is_answered_once(redis_db: str, tmp_path: Path) -> None:
    fake = FakeTelegram()
    config = SimulatorConfig(first_token_latency=0.2, tokens_per_second=40)

    def replica(url: str) -> ASGIApp:
        return create_app(make_settings(tmp_path, store=redis_db, public_url=url, rate_limit_per_minute=0))

    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(fake.app()) as fake_base,
        live_app(replica) as first,
        live_app(replica) as second,
        httpx.AsyncClient(timeout=30) as client,
    ):
        fake.base = fake_base
        app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "chat"}
        assert (await client.post(f"{first}/admin/api/apps", json=app, headers=admin_headers())).status_code == 201
        settings = {"bot_token": TOKEN, "secret_token": SECRET, "api_base_url": fake_base, "edit_interval": 0.2}
        created = await client.post(
            f"{first}/admin/api/endpoints",
            json={"plugin": "telegram", "apps": ["support"], "settings": settings},
            headers=admin_headers(),
        )
        assert created.status_code == 201, created.text
        path = created.json()["url"].removeprefix(first)

        ana = user(1111, "Ana", "ana")
        signed = telegram_request(SECRET, message_update("[[say:only once]]", sender=ana, update_id=424242))
        sends = [client.post(base + path, content=signed.body, headers=signed.headers) for base in (first, second) * 3]
        acks = await asyncio.gather(*sends)
        assert [a.status_code for a in acks] == [200] * 6

        await fake.wait_for(lambda: fake.chat(ana["id"]) == ["only once"], timeout=20)
        for _ in range(200):
            jobs = (await client.get(f"{second}/admin/api/jobs", headers=admin_headers())).json()["jobs"]
            if all(job["state"] == "done" for job in jobs):
                break
            await asyncio.sleep(0.05)
        assert len(jobs) == 1 and jobs[0]["state"] == "done" and jobs[0]["attempts"] == 1
        assert len(fake.called("sendMessage")) == 1
        stats = (await client.get(f"{simulator}/_sim/stats")).json()
        assert stats["generation_requests"] == 1
