"""The bot and the endpoint's /ask share one conversation: same mapping, same store, same bridge.

A real gateway (in-process, with its job workers), the Dify simulator and the fake Discord API on
real uvicorn servers; the bot's Discord objects are mocks, its gateway side is the real library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import discord
import httpx
import pytest

from bots.rendering import Trigger
from bots.responder import Responder
from bots.runner import EndpointContexts
from gateway.records.apps import AppIn
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.bots.test_chat import Screen, make_channel, make_message
from tests.support.discord_interactions import APPLICATION_ID, command, new_key, public_key_hex, signed_headers
from tests.support.fake_discord import FakeDiscord
from tests.support.gateway import live_server, make_settings, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.live]


async def test_a_bot_dm_and_an_ask_in_that_dm_continue_one_conversation(tmp_path: Path) -> None:
    fake, key = FakeDiscord(), new_key()
    config = SimulatorConfig(first_token_latency=0.01, tokens_per_second=0)
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(fake.app()) as discord_base,
        running_app(make_settings(tmp_path)) as running,
        httpx.AsyncClient() as client,
    ):
        gateway = running.gateway
        await gateway.apps.add(
            AppIn.model_validate(
                {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "chat"}
            )
        )
        values = {
            "application_id": APPLICATION_ID,
            "public_key": public_key_hex(key),
            "api_base_url": f"{discord_base}/api/v10",
            "bot_token": fake.bot_token,
        }
        record, url = await gateway.endpoints.create("discord", ["support"], values)

        screen = Screen()
        dm = make_channel(screen, discord.DMChannel, channel_id=42)
        responder = Responder(contexts=EndpointContexts(gateway.host, record.id), clock=gateway.clock)
        answer = await responder.respond(make_message("hello bot", dm, guild=None), Trigger.DIRECT, 99)
        assert answer is not None and answer.conversation_id
        assert screen.contents() == ["You said: hello bot"]

        payload = command("ask", "and now by command", guild=None, channel="42", user="7")
        body = json.dumps(payload).encode()
        response = await running.client.post(running.path(url), content=body, headers=signed_headers(key, body))
        assert response.json() == {"type": 5}
        await fake.wait_for(lambda: fake.visible(payload["token"]) == ["You said: and now by command"])

        listed: dict[str, Any] = (
            await client.get(
                f"{simulator}/v1/conversations",
                params={"user": "discord:7"},
                headers={"authorization": "Bearer app-simulator"},
            )
        ).json()
        assert [c["id"] for c in listed["data"]] == [answer.conversation_id]

        await gateway.endpoints.set_enabled(record.id, False)
        assert await EndpointContexts(gateway.host, record.id)() is None


@pytest.mark.parametrize("setting", [{}, {"query_input": "question"}], ids=["app-default", "setting"])
async def test_the_bot_gives_a_workflow_app_the_question_in_its_own_input(
    tmp_path: Path, setting: dict[str, str]
) -> None:
    form = (("question", "paragraph", True), ("style", "text-input", False))
    config = SimulatorConfig(mode="workflow", inputs=form, first_token_latency=0, tokens_per_second=0)
    async with (
        live_server(create_simulator_app(config)) as simulator,
        running_app(make_settings(tmp_path)) as running,
        httpx.AsyncClient() as client,
    ):
        gateway = running.gateway
        app = {"name": "flow", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "workflow"}
        await gateway.apps.add(AppIn.model_validate(app))
        values = {"application_id": APPLICATION_ID, "public_key": public_key_hex(new_key()), **setting}
        record, _ = await gateway.endpoints.create("discord", ["flow"], values)
        screen = Screen()
        dm = make_channel(screen, discord.DMChannel, channel_id=42)
        responder = Responder(contexts=EndpointContexts(gateway.host, record.id), clock=gateway.clock)
        await responder.respond(make_message("hello bot", dm, guild=None), Trigger.DIRECT, 99)
        assert screen.contents() == ["You said: hello bot"]
        stats = (await client.get(f"{simulator}/_sim/stats")).json()
    [run] = [r["body"] for r in stats["recent_requests"] if r["path"].endswith("/run")]
    assert run["inputs"] == {"question": "hello bot"}
