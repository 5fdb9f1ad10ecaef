"""A gateway killed between acknowledging a Telegram update and finishing its answer: a new process
on the same SQLite file finishes the job, and exactly one answer reaches the chat (the message the
killed process posted is edited, not posted again)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest

from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.testing.platforms.telegram import BOT_USERNAME, TOKEN, FakeTelegram, group_chat, message_update, user
from gateway.testing.signing import telegram_request
from tests.support.gateway import admin_headers, base_url, listening_socket, live_server
from tests.support.processes import gateway_env, kill_once_generating, start_gateway, stop, wait_healthy

pytestmark = [pytest.mark.anyio, pytest.mark.live]

SECRET = "restart-secret"


async def test_sigkill_after_the_ack_then_a_new_process_answers_once(tmp_path: Path) -> None:
    sock = listening_socket()  # both processes serve on it in turn
    base = base_url(sock)
    env = gateway_env(
        GATEWAY_STORE=f"sqlite:///{tmp_path / 'gateway.db'}",
        GATEWAY_JOB_LEASE="1.0",
        GATEWAY_JOB_POLL_INTERVAL="0.1",
        GATEWAY_PUBLIC_URL=base,
    )
    fake = FakeTelegram()
    config = SimulatorConfig(first_token_latency=1.5, tokens_per_second=40)  # slow enough to die waiting
    first = start_gateway(env, sock)
    second: subprocess.Popen[bytes] | None = None
    try:
        async with (
            live_server(create_simulator_app(config)) as simulator,
            live_server(fake.app()) as fake_base,
            httpx.AsyncClient(timeout=10) as client,
        ):
            fake.base = fake_base
            await wait_healthy(client, base, first)
            app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "chat"}
            assert (await client.post(f"{base}/admin/api/apps", json=app, headers=admin_headers())).status_code == 201
            settings = {"bot_token": TOKEN, "secret_token": SECRET, "api_base_url": fake_base}
            created = await client.post(
                f"{base}/admin/api/endpoints",
                json={"plugin": "telegram", "apps": ["support"], "settings": settings},
                headers=admin_headers(),
            )
            assert created.status_code == 201, created.text
            url = created.json()["url"]

            group = group_chat()
            update = message_update(f"@{BOT_USERNAME} survive a crash", sender=user(), chat=group)
            signed = telegram_request(SECRET, update)
            ack = await client.post(url, content=signed.body, headers=signed.headers)
            assert ack.status_code == 200

            # The job posted its placeholder and waits for Dify's first token: kill it there.
            await fake.wait_for(lambda: len(fake.called("sendMessage")) == 1)
            await kill_once_generating(client, simulator, first)

            second = start_gateway(env, sock)
            await wait_healthy(client, base, second)
            answer = "You said: survive a crash"  # the mention is not part of the question
            await fake.wait_for(lambda: fake.chat(group["id"]) == [answer], timeout=20)

            jobs = (await client.get(f"{base}/admin/api/jobs", headers=admin_headers())).json()
            [job] = jobs["jobs"]
            for _ in range(100):
                if job["state"] == "done":
                    break
                await asyncio.sleep(0.05)
                job = (await client.get(f"{base}/admin/api/jobs/{job['id']}", headers=admin_headers())).json()
            assert job["state"] == "done" and job["attempts"] == 2
            # One message in the chat: the rerun edited the placeholder the killed process posted.
            assert len(fake.called("sendMessage")) == 1
            assert fake.called("deleteMessage") == []
            assert fake.chat(group["id"]) == [answer]
    finally:
        stop(first)
        if second is not None:
            stop(second)
        sock.close()
