"""A gateway SIGKILLed between the ack and the callback still yields exactly one callback after restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gateway.host.registry import PluginRegistry
from gateway.host.runtime import open_gateway
from gateway.records.apps import AppIn
from gateway.settings import Settings
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.gateway import ADMIN_TOKEN, base_url, listening_socket, live_server
from tests.support.processes import gateway_env, start_gateway, stop, wait_healthy
from tests.support.webhooks import Receiver, signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]

ROOT = Path(__file__).resolve().parents[2]


async def test_sigkill_between_ack_and_callback(tmp_path: Path) -> None:
    sock = listening_socket()  # both processes serve on it in turn
    base = base_url(sock)
    env = gateway_env(
        GATEWAY_STORE=f"sqlite:///{tmp_path / 'gw.db'}",
        GATEWAY_PUBLIC_URL=base,
        GATEWAY_JOB_LEASE="1.5",
        GATEWAY_JOB_POLL_INTERVAL="0.1",
        GATEWAY_CALLBACK_ALLOW_HOSTS="127.0.0.1",
        GATEWAY_CALLBACK_ALLOW_HTTP="true",
    )
    receiver = Receiver(secret="")
    slow = SimulatorConfig(first_token_latency=1.0, tokens_per_second=20)
    async with (
        live_server(create_simulator_app(slow)) as simulator,
        live_server(receiver.app()) as receiver_base,
        httpx.AsyncClient(timeout=10) as client,
    ):
        settings = Settings.from_env(env).with_changes(admin_token=SecretStr(ADMIN_TOKEN))
        setup = await open_gateway(settings, registry=PluginRegistry.from_entry_points())
        try:
            await setup.apps.add(
                AppIn(name="a", base_url=f"{simulator}/v1", api_key=SecretStr("app-simulator"), mode="chat")
            )
            _, url, shown = await setup.endpoints.create_with_secrets("webhook", ["a"], {})
        finally:
            await setup.aclose()
        receiver.secret = shown["secret"]

        first = start_gateway(env, sock)
        second: subprocess.Popen[bytes] | None = None
        try:
            await wait_healthy(client, base, first)
            body = json.dumps({"query": "survive", "user": "u", "callback_url": f"{receiver_base}/hook"}).encode()
            accepted = await client.post(url, content=body, headers=signed_headers(receiver.secret, body))
            assert accepted.status_code == 202
            task_id = accepted.json()["task_id"]
            for _ in range(100):  # the answer is under way in the first process
                if (await client.get(f"{simulator}/_sim/stats")).json()["streams_started"] >= 1:
                    break
                await asyncio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            assert receiver.received == []

            second = start_gateway(env, sock)
            await wait_healthy(client, base, second)
            await receiver.wait(1, timeout=30)
            await asyncio.sleep(1.0)  # nothing more arrives
            assert len(receiver.received) == 1
            delivered = receiver.received[0]
            assert delivered["id"] == f"msg_{task_id}"
            assert delivered["payload"]["data"]["answer"] == "You said: survive"
        finally:
            stop(first)
            stop(second)
            sock.close()
