"""The `lark` plugin in real gateways: two gateways on one real Redis (one answer per event, one
tenant token between them), a gateway process SIGKILLed between the ack and the answer (the next
one answers once, in the card already sent), and `dify-gateway lark check`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.testing import FakeLark, lark_event, lark_message_event, serving
from tests.endpoints.lark.conftest import BOT, ENCRYPT_KEY, TOKEN
from tests.support.gateway import (
    admin_headers,
    base_url,
    create_chat_endpoint,
    listening_socket,
    live_app,
    live_server,
    make_settings,
)
from tests.support.processes import crash_test_env, start_gateway, stop, wait_healthy

pytestmark = [pytest.mark.anyio, pytest.mark.live]


async def create_lark_endpoint(client: httpx.AsyncClient, base: str, simulator: str, fake: FakeLark) -> str:
    """A lark endpoint on the gateway at `base`, answering with the simulator, talking to `fake`."""
    settings = {
        "app_id": fake.app_id,
        "app_secret": fake.app_secret,
        "encrypt_key": ENCRYPT_KEY,
        "verification_token": TOKEN,
        "api_base_url": fake.api_url,
        "edit_interval": 0.2,
    }
    return await create_chat_endpoint(client, base, simulator, "lark", settings)


async def send(client: httpx.AsyncClient, url: str, event: dict[str, Any]) -> httpx.Response:
    signed = lark_event(ENCRYPT_KEY, event, timestamp=time.time())
    return await client.send(signed.httpx(url))


@pytest.mark.redis
async def test_two_gateways_on_one_redis_answer_an_event_once_and_share_one_token(
    tmp_path: Path, redis_db: str
) -> None:
    fake = FakeLark(bot_open_id=BOT)
    config = SimulatorConfig(first_token_latency=0.1, tokens_per_second=100)

    def gateway(url: str) -> Any:
        return create_app(make_settings(tmp_path, store=redis_db, public_url=url, rate_limit_per_minute=0))

    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(fake.app()) as fake_base,
        live_app(gateway) as first,
        live_app(gateway) as second,
        httpx.AsyncClient(timeout=15) as client,
    ):
        fake.base = fake_base
        url = await create_lark_endpoint(client, first, simulator, fake)
        urls = [url, url.replace(first, second)]
        event = lark_message_event("only once", token=TOKEN)
        acks = await asyncio.gather(*(send(client, u, event) for u in urls * 2))
        assert [a.status_code for a in acks] == [200] * 4

        message_id = event["event"]["message"]["message_id"]
        await fake.wait_for(lambda: fake.texts(message_id) == ["You said: only once"])
        other = lark_message_event("and again", token=TOKEN)
        assert (await send(client, urls[1], other)).status_code == 200
        other_id = other["event"]["message"]["message_id"]
        await fake.wait_for(lambda: fake.texts(other_id) == ["You said: and again"])

        jobs = (await client.get(f"{first}/admin/api/jobs", headers=admin_headers())).json()["jobs"]
        assert len(jobs) == 2
        assert len(fake.calls_to("reply")) == 2 and len(fake.cards) == 2
        assert fake.tokens_issued == 1  # fetched by one gateway, used by both


async def test_sigkill_after_the_ack_then_a_new_process_answers_once_in_the_same_card(tmp_path: Path) -> None:
    sock = listening_socket()  # both processes serve on it in turn
    base = base_url(sock)
    env = crash_test_env(f"sqlite:///{tmp_path / 'gateway.db'}", base)
    fake = FakeLark(bot_open_id=BOT)
    question = " ".join(f"word{n}" for n in range(40))
    slow = SimulatorConfig(first_token_latency=0.2, tokens_per_second=10)  # slow enough to die midway
    processes: list[subprocess.Popen[bytes]] = [start_gateway(env, sock)]
    try:
        async with contextlib.AsyncExitStack() as stack:
            simulator = await stack.enter_async_context(live_server(create_simulator_app(slow)))
            fake.base = await stack.enter_async_context(live_server(fake.app()))
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
            await wait_healthy(client, base, processes[0])
            url = await create_lark_endpoint(client, base, simulator, fake)
            event = lark_message_event(question, token=TOKEN)
            assert (await send(client, url, event)).status_code == 200

            # The card was sent and streams the answer: kill the process there.
            await fake.wait_for(lambda: sum(len(card.updates) for card in fake.cards.values()) >= 2)
            os.kill(processes[0].pid, signal.SIGKILL)
            processes[0].wait()
            (card,) = fake.cards.values()
            half = card.content
            assert card.streaming and half != f"You said: {question}"

            processes.append(start_gateway(env, sock))
            await wait_healthy(client, base, processes[1])
            message_id = event["event"]["message"]["message_id"]
            await fake.wait_for(
                lambda: fake.texts(message_id) == [f"You said: {question}"] and not card.streaming, timeout=30
            )
            for _ in range(200):
                jobs = (await client.get(f"{base}/admin/api/jobs", headers=admin_headers())).json()["jobs"]
                if [j["state"] for j in jobs] == ["done"]:
                    break
                await asyncio.sleep(0.05)
            assert [(j["state"], j["attempts"]) for j in jobs] == [("done", 2)]
            # One reply, one card: the rerun showed the answer again in the card the killed process sent.
            assert len(fake.calls_to("reply")) == 1 and list(fake.cards) == [card.card_id]
            assert fake.calls_to("delete") == [] and fake.calls_to("patch") == []
            assert card.sequences == sorted(set(card.sequences))  # the rerun's numbers came after
    finally:
        for process in processes:
            stop(process)
        sock.close()


def test_lark_check_proves_the_credentials(tmp_path: Path) -> None:
    fake = FakeLark(bot_open_id=BOT)
    store = f"sqlite:///{tmp_path / 'gw.db'}"
    env: dict[str, str | None] = {
        **{name: None for name in os.environ if name.startswith("GATEWAY_")},
        "GATEWAY_STORE": store,
        "GATEWAY_USE_AIOHTTP": "false",
    }
    runner = CliRunner()
    with serving(fake.app(), name="fake-lark") as fake_base:
        fake.base = fake_base
        app = ["apps", "add", "support", "--base-url", "https://dify.test/v1", "--key", "app-k", "--mode", "chat"]
        added = runner.invoke(cli, app, env=env)
        assert added.exit_code == 0, added.output
        settings = {
            "app_id": fake.app_id,
            "app_secret": fake.app_secret,
            "encrypt_key": ENCRYPT_KEY,
            "api_base_url": fake.api_url,
        }
        args = ["endpoints", "create", "--plugin", "lark", "--app", "support", "--json"]
        for name, value in settings.items():
            args += ["--set", f"{name}={value}"]
        created = runner.invoke(cli, args, env=env)
        assert created.exit_code == 0, created.output
        endpoint = json.loads(created.stdout)["id"]

        checked = check(endpoint, env)
        assert checked.returncode == 0, checked.stderr
        assert "Credentials work" in checked.stdout and BOT in checked.stdout and "enabled" in checked.stdout
        assert fake.tokens_issued == 1 and fake.calls_to("bot_info")

        fake.app_secret = "rotated"  # the endpoint's secret is no longer the app's
        refused = check(endpoint, env)
        assert refused.returncode == 1 and "app secret invalid" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert settings["app_secret"] not in refused.stderr + refused.stdout


def check(endpoint: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    """`dify-gateway lark check ENDPOINT` as an operator runs it (a process of its own)."""
    environment = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    command = [sys.executable, "-m", "gateway", "lark", "check", endpoint]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=False)
