"""Next-step panels of the chat platforms that came after the console's first pass, in a real
browser against the platforms' local fakes: Telegram's "connect webhook" and its status; Lark's
Request URL, events and permissions, and "check credentials"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.testing.platforms.lark import FakeLark
from gateway.testing.platforms.telegram import TOKEN, FakeTelegram
from tests.console.conftest import console_stack
from tests.console.test_console_browser import log_in, shoot
from tests.support.gateway import live_server

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.browser]

SECRET = "webhook-secret-for-console-tests"
LARK_ENCRYPT_KEY = "kxOdHvf1fgZ3mFq1xvMu2dQ5Ki3Eb0aS"


async def test_telegram_connect_webhook_and_its_status(tmp_path: Path, browser: Any) -> None:
    fake = FakeTelegram()
    async with live_server(fake.app()) as fake_base, console_stack(tmp_path) as stack:
        app = {"name": "support", "base_url": f"{stack.simulator}/v1", "api_key": "app-simulator"}
        assert (await stack.admin("POST", "/apps", json=app)).status_code == 201
        settings = {"bot_token": TOKEN, "secret_token": SECRET, "api_base_url": fake_base}
        created = await stack.admin(
            "POST", "/endpoints", json={"plugin": "telegram", "apps": ["support"], "name": "tg", "settings": settings}
        )
        assert created.status_code == 201, created.text
        url = created.json()["url"]
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, stack)
        await page.goto(f"{stack.gateway}/console/#/endpoints/{created.json()['id']}")

        # The webhook's state is read from Telegram when the page opens: not connected yet.
        await page.get_by_text("not connected").wait_for()
        await page.get_by_text("Webhook: not set").wait_for()
        await page.get_by_label("Drop the updates Telegram queued meanwhile").check()
        await page.get_by_role("button", name="Connect webhook").click()
        await page.get_by_text(f"@dify_test_bot now sends its messages to {url}").wait_for()
        await page.get_by_text("Webhook: this endpoint").wait_for()
        await page.get_by_text("connected", exact=True).wait_for()
        assert fake.webhook["url"] == url and fake.webhook["drop_pending_updates"] is True
        assert fake.webhook["secret_token"] == SECRET
        assert [c["command"] for c in fake.commands] == ["ask", "reset", "start"]
        html = await page.content()
        assert TOKEN not in html and SECRET not in html
        await shoot(page, "40-endpoint-telegram")


async def test_lark_next_step_and_check_credentials(tmp_path: Path, browser: Any) -> None:
    fake = FakeLark()
    async with live_server(fake.app()) as fake_base, console_stack(tmp_path) as stack:
        fake.base = fake_base
        app = {"name": "support", "base_url": f"{stack.simulator}/v1", "api_key": "app-simulator"}
        assert (await stack.admin("POST", "/apps", json=app)).status_code == 201
        settings = {
            "app_id": fake.app_id,
            "app_secret": fake.app_secret,
            "encrypt_key": LARK_ENCRYPT_KEY,
            "api_base_url": fake.api_url,
        }
        created = await stack.admin(
            "POST", "/endpoints", json={"plugin": "lark", "apps": ["support"], "name": "lark", "settings": settings}
        )
        assert created.status_code == 201, created.text
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, stack)
        await page.goto(f"{stack.gateway}/console/#/endpoints/{created.json()['id']}")
        assert await page.get_by_role("textbox", name="Request URL").input_value() == created.json()["url"]
        await page.get_by_text("im.message.receive_v1").wait_for()
        await page.get_by_text("cardkit:card:write").wait_for()
        await page.get_by_role("button", name="Check credentials").click()
        await page.get_by_text(re.compile("^Credentials work on .*a tenant_access_token was fetched")).wait_for()
        assert fake.tokens_issued == 1
        html = await page.content()
        assert fake.app_secret not in html and LARK_ENCRYPT_KEY not in html
        await shoot(page, "41-endpoint-lark")
