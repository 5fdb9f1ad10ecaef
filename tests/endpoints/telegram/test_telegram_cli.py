"""`dify-gateway telegram connect|status|disconnect ENDPOINT`, run as the real command against the fake
Bot API: the webhook set with the endpoint's URL, secret and update types, the commands registered,
getWebhookInfo told in plain words, the webhook removed."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.testing.platforms.telegram import TOKEN, FakeTelegram
from tests.support.gateway import live_server
from tests.support.processes import gateway_env

pytestmark = [pytest.mark.anyio, pytest.mark.live]

PUBLIC = "https://bots.example.com"
SECRET = "cli-webhook-secret"


async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("dify-gateway")),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def ok(env: dict[str, str], *args: str) -> str:
    code, out, err = await run(env, *args)
    assert code == 0, (out, err)
    assert "Traceback" not in err
    return out


@pytest.fixture
async def fake() -> Any:
    fake = FakeTelegram()
    async with live_server(fake.app()) as base:
        fake.base = base
        yield fake


async def _endpoint(env: dict[str, str], fake: FakeTelegram, *extra: str) -> dict[str, Any]:
    await ok(
        env,
        "apps",
        "add",
        "support",
        "--base-url",
        "https://dify.test/v1",
        "--key",
        "app-" + "K" * 28,
        "--mode",
        "chat",
    )
    created = await ok(
        env,
        "endpoints",
        "create",
        "--plugin",
        "telegram",
        "--app",
        "support",
        "--set",
        f"bot_token={TOKEN}",
        "--set",
        f"api_base_url={fake.base}",
        *extra,
        "--json",
    )
    endpoint: dict[str, Any] = json.loads(created)
    return endpoint


async def test_connect_status_and_disconnect(tmp_path: Path, fake: FakeTelegram) -> None:
    env = gateway_env(GATEWAY_STORE=f"sqlite:///{tmp_path / 'gw.db'}", GATEWAY_PUBLIC_URL=PUBLIC)
    endpoint = await _endpoint(env, fake, "--set", f"secret_token={SECRET}")
    url = endpoint["url"]
    assert url.startswith(PUBLIC + "/e/")

    fake.pending_updates = 12
    connected = await ok(env, "telegram", "connect", endpoint["id"], "--drop-pending")
    assert fake.webhook == {
        "url": url,
        "secret_token": SECRET,
        "allowed_updates": ["message"],
        "drop_pending_updates": True,
    }
    assert [c["command"] for c in fake.commands] == ["ask", "reset", "start"]
    assert f"@dify_test_bot now sends its messages to {url}" in connected and "dropped" in connected
    assert SECRET not in connected and TOKEN not in connected

    fake.pending_updates = 3
    fake.last_error = (1_700_000_000, "Wrong response from the webhook: 502 Bad Gateway")
    status = await ok(env, "telegram", "status", endpoint["id"])
    assert "Webhook: this endpoint" in status
    assert "Updates waiting at Telegram: 3" in status
    assert "Last delivery error: Wrong response from the webhook: 502 Bad Gateway (2023-11-14 22:13:20 UTC" in status
    assert json.loads(await ok(env, "telegram", "status", endpoint["id"], "--json"))["pending_update_count"] == 3

    removed = await ok(env, "telegram", "disconnect", endpoint["id"])
    assert "Webhook removed" in removed and fake.webhook == {}
    code, out, _ = await run(env, "telegram", "status", endpoint["id"])
    assert code == 1 and "Webhook: not set (run telegram connect)" in out  # not pointing here: exit 1


async def test_status_names_a_webhook_that_points_elsewhere(tmp_path: Path, fake: FakeTelegram) -> None:
    env = gateway_env(GATEWAY_STORE=f"sqlite:///{tmp_path / 'gw.db'}", GATEWAY_PUBLIC_URL=PUBLIC)
    endpoint = await _endpoint(env, fake)
    fake.webhook = {"url": "https://old.example.com/hook"}
    code, out, _ = await run(env, "telegram", "status", endpoint["id"])
    assert code == 1 and "another URL: https://old.example.com/hook" in out


async def test_a_wrong_bot_token_is_a_clean_error(tmp_path: Path, fake: FakeTelegram) -> None:
    env = gateway_env(GATEWAY_STORE=f"sqlite:///{tmp_path / 'gw.db'}", GATEWAY_PUBLIC_URL=PUBLIC)
    endpoint = await _endpoint(env, fake)
    fake.token = "987654321:" + "Z" * 35  # Telegram no longer knows the endpoint's token
    code, out, err = await run(env, "telegram", "connect", endpoint["id"])
    assert code == 1 and "Traceback" not in err
    assert "Telegram refused the webhook: Unauthorized (check bot_token)" in err
    assert TOKEN not in out + err and TOKEN.split(":")[1] not in out + err


@pytest.mark.parametrize("date", [10**20, -(10**20), 2**63])
async def test_a_last_error_date_out_of_any_calendar_is_told_not_a_crash(
    tmp_path: Path, fake: FakeTelegram, date: int
) -> None:
    env = gateway_env(GATEWAY_STORE=f"sqlite:///{tmp_path / 'gw.db'}", GATEWAY_PUBLIC_URL=PUBLIC)
    endpoint = await _endpoint(env, fake)
    fake.last_error = (date, "Wrong response from the webhook")
    code, out, err = await run(env, "telegram", "status", endpoint["id"])
    assert "Traceback" not in err, err
    assert "Last delivery error: Wrong response from the webhook (at an unreadable time)" in out
