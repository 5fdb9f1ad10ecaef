"""A gateway killed between acknowledging a Slack event and finishing its answer: a new process
on the same SQLite file finishes the job, and exactly one answer reaches Slack."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest

from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.endpoints.slack.conftest import BOT_TOKEN, create_slack_endpoint, envelope, mention, signed
from tests.support.fake_slack import FakeSlack
from tests.support.gateway import admin_headers, base_url, listening_socket, live_server
from tests.support.processes import gateway_env, kill_once_generating, start_gateway, stop, wait_healthy

pytestmark = [pytest.mark.anyio, pytest.mark.live]

ROOT = Path(__file__).resolve().parents[3]


async def test_sigkill_after_the_ack_then_a_new_process_answers_once(tmp_path: Path) -> None:
    sock = listening_socket()  # both processes serve on it in turn
    base = base_url(sock)
    env = gateway_env(
        GATEWAY_STORE=f"sqlite:///{tmp_path / 'gateway.db'}",
        GATEWAY_JOB_LEASE="1.0",
        GATEWAY_JOB_POLL_INTERVAL="0.1",
        GATEWAY_PUBLIC_URL=base,
    )
    fake = FakeSlack(token=BOT_TOKEN)
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
            url = await create_slack_endpoint(client, base, simulator, fake)

            event = mention("survive a crash")
            body = envelope(event)
            raw = httpx.Request("POST", url, json=body).content
            ack = await client.post(url, content=raw, headers={"content-type": "application/json", **signed(raw)})
            assert ack.status_code == 200

            # The job posted its placeholder and waits for Dify's first token: kill it there.
            await fake.wait_for(lambda: len(fake.calls_to("chat.postMessage")) == 1)
            await kill_once_generating(client, simulator, first)

            second = start_gateway(env, sock)
            await wait_healthy(client, base, second)
            await fake.wait_for(lambda: fake.texts("C1", event["ts"]) == ["You said: survive a crash"], timeout=20)

            jobs = (await client.get(f"{base}/admin/api/jobs", headers=admin_headers())).json()
            [job] = jobs["jobs"]
            for _ in range(100):
                if job["state"] == "done":
                    break
                await asyncio.sleep(0.05)
                job = (await client.get(f"{base}/admin/api/jobs/{job['id']}", headers=admin_headers())).json()
            assert job["state"] == "done" and job["attempts"] == 2
            # One message in the thread: the rerun edited the placeholder the killed process posted.
            assert len(fake.calls_to("chat.postMessage")) == 1
            assert fake.calls_to("chat.delete") == []
            assert [m.text for m in fake.messages.values()] == ["You said: survive a crash"]
    finally:
        stop(first)
        if second is not None:
            stop(second)
        sock.close()
