"""Start-up failures say what to fix and where: the real discord.py client against a fake Discord
(REST login and a gateway websocket that closes with 4014), the CLI, and the bot inside `serve`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import MagicMock

import discord
import pytest
from click.testing import CliRunner

from bots.bot import GatewayBot, bot_intents
from bots.cli import bot as bot_cli, run_until_stopped
from bots.cogs.chat import Chat, setup
from bots.errors import BotStartupError, intents_message, login_failure_message, startup_error
from bots.runner import bot_token_of, connect_discord
from gateway.clock import FakeClock
from gateway.host.runtime import Gateway, open_gateway
from gateway.host.services import Host
from gateway.records.apps import AppIn
from tests.support.discord_interactions import APPLICATION_ID, new_key, public_key_hex
from tests.support.fake_discord import FakeDiscord, patched_discord
from tests.support.gateway import live_server, make_settings, running_app

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


async def _endpoint(gateway: Gateway, **settings: object) -> str:
    if "a" not in {app.name for app in await gateway.apps.all()}:
        await gateway.apps.add(
            AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "app-k", "mode": "chat"})
        )
    values = {"application_id": APPLICATION_ID, "public_key": public_key_hex(new_key()), **settings}
    record, _ = await gateway.endpoints.create("discord", ["a"], values)
    return record.id


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gateway = await open_gateway(make_settings(tmp_path))
    yield gateway
    await gateway.aclose()


def test_messages_say_what_to_enable_where() -> None:
    intents = intents_message("ep_1")
    assert "Developer Portal" in intents and "Bot → Privileged Gateway Intents → Message Content Intent" in intents
    assert "4014" in intents
    login = login_failure_message("ep_1")
    assert "Bot → Reset Token" in login and "dify-gateway endpoints update ep_1 --set bot_token=" in login
    assert startup_error(discord.LoginFailure("Improper token"), "ep_1") is not None
    assert startup_error(discord.PrivilegedIntentsRequired(None), "ep_1") is not None
    assert startup_error(RuntimeError("other"), "ep_1") is None


@pytest.mark.live
async def test_an_invalid_token_is_a_login_failure_with_directions(gateway: Gateway) -> None:
    fake = FakeDiscord()
    endpoint_id = await _endpoint(gateway, bot_token="wrong-token-" + "z" * 20)
    async with live_server(fake.app()) as base:
        with patched_discord(base), pytest.raises(BotStartupError) as caught:
            await connect_discord(gateway.host, endpoint_id, "wrong-token-" + "z" * 20)
    assert caught.value.message == login_failure_message(endpoint_id)
    assert fake.matching("GET", "/users/@me")[0].status == 401


@pytest.mark.live
async def test_missing_message_content_intent_gives_directions(gateway: Gateway) -> None:
    fake = FakeDiscord(gateway_close_code=4014)
    endpoint_id = await _endpoint(gateway, bot_token=fake.bot_token)
    async with live_server(fake.app()) as base:
        with patched_discord(base), pytest.raises(BotStartupError) as caught:
            await connect_discord(gateway.host, endpoint_id, fake.bot_token)
    assert caught.value.message == intents_message(endpoint_id)


async def test_the_endpoint_must_be_a_discord_one_with_a_bot_token(gateway: Gateway) -> None:
    with pytest.raises(BotStartupError, match="no endpoint 'ep_missing'"):
        await bot_token_of(gateway.host, "ep_missing")
    without = await _endpoint(gateway)
    with pytest.raises(BotStartupError, match="has no bot_token"):
        await bot_token_of(gateway.host, without)
    echo, _ = await gateway.endpoints.create("echo", [], {})
    with pytest.raises(BotStartupError, match="not a discord one"):
        await bot_token_of(gateway.host, echo.id)
    with_token = await _endpoint(gateway, bot_token="  tok-en  ")
    assert await bot_token_of(gateway.host, with_token) == "tok-en"


async def test_the_bot_asks_for_message_content_and_loads_the_chat_cog() -> None:
    assert bot_intents().message_content
    bot = GatewayBot(contexts=MagicMock(), clock=FakeClock())
    await bot.setup_hook()
    # load_extension imports its own copy of the module, so compare by name
    assert type(bot.get_cog("Chat")).__qualname__ == Chat.__qualname__
    assert bot.allowed_mentions is not None and bot.allowed_mentions.everyone is False
    await bot.on_message(MagicMock())  # no prefix commands: nothing happens
    with pytest.raises(TypeError, match="GatewayBot"):
        await setup(MagicMock())


def test_the_bot_command_is_installed_and_explains_a_missing_endpoint(tmp_path: Path) -> None:
    """Through the real `dify-gateway` entry point: the `bot` group comes from `dify_gateway.commands`."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_STORE": f"sqlite:///{tmp_path / 'g.db'}",
    }
    cli = [sys.executable, "-c", "from gateway.cli.main import main; main()"]
    result = subprocess.run([*cli, "bot", "discord", "--endpoint", "ep_nope"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "error: no endpoint 'ep_nope'" in result.stderr


def test_the_bot_command_in_process(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"GATEWAY_STORE": f"sqlite:///{tmp_path / 'g.db'}"}
    bad_ttl = runner.invoke(bot_cli, ["discord", "--endpoint", "x", "--lease-ttl", "0"], env=env)
    assert bad_ttl.exit_code == 1 and "--lease-ttl must be positive" in bad_ttl.output
    missing = runner.invoke(bot_cli, ["discord", "--endpoint", "ep_nope"], env=env)
    assert missing.exit_code == 1 and "no endpoint 'ep_nope'" in missing.output


def test_a_signal_stops_the_bot_after_its_cleanup() -> None:
    cleaned = []

    async def main() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(30)
        finally:
            cleaned.append(True)

    run_until_stopped(main())
    assert cleaned == [True]

    async def failing() -> None:
        raise BotStartupError("nope")

    with pytest.raises(BotStartupError):
        run_until_stopped(failing())


async def test_a_bot_inside_serve_is_retried_after_unexpected_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bots.runner
    from bots.service import discord_bots

    attempts: list[str] = []

    async def flaky(host: Host, endpoint_id: str) -> None:
        attempts.append(endpoint_id)
        if len(attempts) == 1:
            raise OSError("network down")

    monkeypatch.setattr(bots.runner, "run_discord_bot", flaky)
    clock = FakeClock()
    gateway = await open_gateway(make_settings(tmp_path, extra={"discord_bot_endpoints": "ep_1"}), clock=clock)
    try:
        work = discord_bots(gateway.host)
        assert work is not None
        await work
        assert attempts == ["ep_1", "ep_1"] and clock.monotonic() == 5.0
        assert discord_bots((await open_gateway(make_settings(tmp_path))).host) is None
    finally:
        await gateway.aclose()


@pytest.mark.live
async def test_a_bot_inside_serve_that_cannot_start_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeDiscord()
    async with live_server(fake.app()) as base:
        with patched_discord(base):
            gateway = await open_gateway(make_settings(tmp_path))
            endpoint_id = await _endpoint(gateway, bot_token="wrong-token-" + "z" * 20)
            await gateway.aclose()
            settings = make_settings(tmp_path, extra={"discord_bot_endpoints": f"{endpoint_id}, {endpoint_id}"})
            with caplog.at_level(logging.ERROR, logger="bots.service"):
                async with running_app(settings) as running:
                    for _ in range(200):
                        if any("is not running" in r.getMessage() for r in caplog.records):
                            break
                        await asyncio.sleep(0.05)
                    assert (await running.client.get("/healthz")).status_code == 200
    [record] = [r for r in caplog.records if r.name == "bots.service"]
    assert login_failure_message(endpoint_id) in record.getMessage()
