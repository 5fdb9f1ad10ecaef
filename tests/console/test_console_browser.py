"""The console in a real browser, from login to a Slack endpoint's live traffic and a replayed
dead letter; screenshots of every screen (desktop and 360 px) go to .artifacts/console/."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest

from tests.console.conftest import SHOTS, ConsoleStack, console_stack
from tests.endpoints.slack.conftest import SIGNING_SECRET, signed
from tests.support.gateway import ADMIN_TOKEN, live_server
from tests.support.webhooks import Receiver, signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.browser]

WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BOT_TOKEN = "xoxb-console-test-token"


SECRETS = (ADMIN_TOKEN, SIGNING_SECRET, WEBHOOK_SECRET, "app-simulator", BOT_TOKEN)


# Every control has a name a screen reader says: a <label>, aria-label or aria-labelledby, or its text.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => !el.closest('[hidden]') && !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML)"""


async def shoot(page: Any, name: str) -> None:
    """A screenshot at desktop width and at 360 px; no secret is in the page's HTML, no control unlabelled."""
    html = await page.content()
    assert not [secret for secret in SECRETS if secret in html], name
    assert await page.evaluate(UNLABELLED) == [], name
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("document.getElementById('toast').replaceChildren()")  # passing notes hide the screen
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    await page.set_viewport_size({"width": 360, "height": 740})
    await page.screenshot(path=str(SHOTS / f"{name}-360.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


async def dead_letter(stack: ConsoleStack, receiver_url: str) -> str:
    """A webhook answer whose callback the receiver refuses for good (410): a dead callback job."""
    created = await stack.admin(
        "POST",
        "/endpoints",
        json={"plugin": "webhook", "apps": ["support"], "settings": {"secret": WEBHOOK_SECRET}, "name": "hook"},
    )
    assert created.status_code == 201, created.text
    body = json.dumps({"query": "hi", "user": "u1", "callback_url": f"{receiver_url}/hook"}).encode()
    asked = await stack.client.post(created.json()["url"], content=body, headers=signed_headers(WEBHOOK_SECRET, body))
    assert asked.status_code == 202, asked.text
    for _ in range(400):
        dead = (await stack.admin("GET", "/jobs?state=dead")).json()["jobs"]
        if dead:
            job_id: str = dead[0]["id"]
            return job_id
        await asyncio.sleep(0.05)
    raise AssertionError("the callback never died")


async def test_from_login_to_live_traffic_and_a_replayed_dead_letter(tmp_path: Path, browser: Any) -> None:
    receiver = Receiver(WEBHOOK_SECRET, status=410)
    async with (
        live_server(receiver.app()) as receiver_url,
        console_stack(tmp_path, callback_allow_hosts=("127.0.0.1",), callback_allow_http=True) as stack,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        # -- log in (a wrong token first: the error says what to do) ----------------------------
        await page.goto(f"{stack.gateway}/")
        await page.get_by_label("Admin token").fill("not-the-token")
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_text("that is not the admin token").wait_for()
        await shoot(page, "01-login")
        await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        await page.get_by_label("Admin token").press("Enter")
        await page.get_by_role("heading", name="Overview").wait_for()

        # -- add an app: mode detected, key checked, input form shown (reached by keyboard) -------
        await page.get_by_role("link", name="Apps").focus()
        await page.keyboard.press("Enter")
        await page.get_by_label("Name", exact=True).fill("support")
        await page.get_by_label("Base URL").fill(f"{stack.simulator}/v1")
        await page.get_by_label("API key").fill("app-simulator")
        await page.get_by_role("button", name="Add app").click()
        await page.get_by_text(re.compile(r"Added support: a \w[\w-]* app, key checked")).wait_for()
        await page.get_by_role("heading", name=re.compile("^support")).wait_for()
        await shoot(page, "02-apps")

        # -- create a Slack endpoint from its generated settings form ----------------------------
        await page.get_by_role("link", name="Endpoints").click()
        await page.get_by_label("Plugin").select_option("slack")
        await page.get_by_label("Name", exact=True).fill("support-slack")
        await page.get_by_label("support (").check()
        await page.get_by_label("Signing secret").fill(SIGNING_SECRET)
        await page.get_by_label("Log request bodies").check()
        await shoot(page, "03-endpoint-create")
        await page.get_by_role("button", name="Create endpoint").click()
        await page.get_by_role("heading", name="Endpoint created").wait_for()
        url = await page.get_by_role("textbox", name="Endpoint URL").input_value()
        assert url.startswith(f"{stack.gateway}/e/")
        await shoot(page, "04-endpoint-slack")

        # -- download the manifest: the URL is filled in -----------------------------------------
        async with page.expect_download() as download_info:
            await page.get_by_role("button", name="Download Slack manifest").click()
        download = await download_info.value
        manifest = json.loads(await anyio.Path(await download.path()).read_text())
        assert manifest["settings"]["event_subscriptions"]["request_url"] == url
        # In-page links move the focus and keep the screen (the router only takes "#/…").
        await page.get_by_role("link", name="this endpoint's settings").click()
        assert await page.evaluate("document.activeElement.id") == "edit-settings"
        assert "#/endpoints/" in page.url

        # -- a signed request shows up in the live log -------------------------------------------
        await page.get_by_role("link", name="Live traffic →").click()
        await page.get_by_text("No requests yet").wait_for()
        body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"}).encode()
        headers = {"content-type": "application/json", **signed(body)}
        answered = await stack.client.post(url, content=body, headers=headers)
        assert answered.status_code == 200
        unsigned = await stack.client.post(url, content=body, headers={"content-type": "application/json"})
        assert unsigned.status_code == 401
        rows = page.locator("tbody tr")
        await rows.nth(1).wait_for()  # polled live, no reload
        await page.get_by_label("Show").select_option("4")
        await page.locator("tbody tr").first.get_by_text("401").wait_for()
        assert await page.locator("tbody tr").count() == 1
        await page.get_by_label("Show").select_option("all")
        await page.locator("tbody tr", has_text="200").get_by_role("button").click()
        await page.get_by_role("heading", name=re.compile("^Request ")).wait_for()
        await page.get_by_text('"challenge": "c-123"').wait_for()  # body logging is on
        await shoot(page, "05-live-traffic")

        # -- edit a setting: the secret is saved, and shown masked ------------------------------
        await page.get_by_role("link", name="← Endpoint").click()
        await page.get_by_label("Bot Token").fill(BOT_TOKEN)
        await page.get_by_role("button", name="Save settings").click()
        await page.get_by_text("Settings saved").wait_for()
        shown = (await stack.admin("GET", "/endpoints")).json()["endpoints"][0]["settings"]
        assert shown["bot_token"] != BOT_TOKEN and shown["bot_token"]
        await page.locator('input[name="bot_token"][placeholder="•••••• (set)"]').wait_for()

        # -- rotate the URL: the old one keeps working until a date shown ------------------------
        await page.get_by_role("button", name="Rotate URL").click()
        await page.get_by_text("New URL: give it to the caller now.").wait_for()
        await page.get_by_text("Earlier URLs keep working until").wait_for()
        new_url = await page.get_by_role("textbox", name="Endpoint URL").input_value()
        assert new_url != url and new_url.startswith(f"{stack.gateway}/e/")

        # -- replay a dead letter ----------------------------------------------------------------
        job_id = await dead_letter(stack, receiver_url)
        await page.get_by_role("link", name="Jobs").click()
        row = page.locator(f'tr[data-job-id="{job_id}"]')
        await row.get_by_text("HTTP 410").wait_for()
        await row.get_by_text(receiver_url).wait_for()  # the callback target, no path
        await shoot(page, "06-jobs")
        await row.get_by_role("button", name=f"Replay job {job_id}").click()
        await page.get_by_text(f"Job {job_id} replayed").wait_for()
        attempts = (await stack.admin("GET", f"/jobs/{job_id}")).json()
        assert attempts["state"] in ("queued", "running", "dead") and attempts["attempts"] <= 1

        # -- the other screens, for the eye ------------------------------------------------------
        await page.get_by_role("link", name="Overview").click()
        await page.get_by_role("heading", name="Requests and errors per minute").wait_for()
        await shoot(page, "07-overview")
        await page.get_by_role("link", name="Endpoints").click()
        await page.get_by_role("link", name="support-slack").wait_for()
        await shoot(page, "08-endpoints")
        await page.get_by_role("link", name="Plugins").click()
        await page.get_by_role("heading", name=re.compile("^slack")).wait_for()
        await shoot(page, "09-plugins")
        await page.goto(f"{stack.gateway}/console/#/endpoints")
        await page.get_by_role("link", name="hook").click()
        await page.get_by_role("button", name="Send a test request").click()
        await page.get_by_text("Answer:").wait_for()
        await shoot(page, "10-endpoint-webhook")

        # -- delete with confirmation: Escape cancels, the dialog's button deletes ---------------
        await page.get_by_role("button", name="Delete").click()
        await page.get_by_role("dialog").wait_for()
        await page.keyboard.press("Escape")
        await page.get_by_role("dialog").wait_for(state="detached")
        assert len((await stack.admin("GET", "/endpoints")).json()["endpoints"]) == 2
        await page.get_by_role("button", name="Delete").click()
        await page.get_by_role("button", name="Delete endpoint").click()
        await page.get_by_role("heading", name="Endpoints").wait_for()
        assert len((await stack.admin("GET", "/endpoints")).json()["endpoints"]) == 1

        # -- log out: the session is dead on the server ------------------------------------------
        await page.get_by_role("button", name="Log out").click()
        await page.get_by_text("You are logged out.").wait_for()
        listed = await page.request.get(f"{stack.gateway}/admin/api/endpoints")
        assert listed.status == 401
        assert problems == [] or all("401" in p for p in problems), problems


async def log_in(page: Any, stack: ConsoleStack) -> None:
    await page.goto(f"{stack.gateway}/console/")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="Overview").wait_for()


async def create(page: Any, plugin: str, name: str, **settings: str) -> None:
    await page.goto(page.url.split("#")[0] + "#/endpoints/new")
    await page.get_by_label("Plugin").select_option(plugin)
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("support (").check()
    for label, value in settings.items():
        await page.get_by_label(label.replace("_", " "), exact=False).first.fill(value)
    await page.get_by_role("button", name="Create endpoint").click()


async def test_each_plugin_gets_its_form_and_its_next_step(tmp_path: Path, browser: Any) -> None:
    async with console_stack(tmp_path) as stack:
        app = {"name": "support", "base_url": f"{stack.simulator}/v1", "api_key": "app-simulator"}
        assert (await stack.admin("POST", "/apps", json=app)).status_code == 201
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, stack)

        # A bad value is named next to its field, with what to do; nothing is created.
        await create(page, "slack", "bad-slack", Bot_Token="abc")
        await page.get_by_text("must be a bot token (xoxb-…), from OAuth & Permissions").first.wait_for()
        assert await page.locator('[data-field="bot_token"] .field-error').text_content() != ""
        assert (await stack.admin("GET", "/endpoints")).json()["endpoints"] == []

        # webhook: the secret the gateway makes is shown once, then never again.
        await create(page, "webhook", "hook")
        await page.get_by_role("heading", name="Endpoint created").wait_for()
        secret = await page.get_by_role("textbox", name="secret (shown once)").input_value()
        assert secret.startswith("whsec_")
        await shoot(page, "11-webhook-created")
        await page.get_by_role("link", name="Endpoints").click()
        await page.get_by_role("link", name="hook").click()
        await page.get_by_role("button", name="Send a test request").wait_for()
        assert secret not in await page.content()

        # openai: a key made here (shown once) works with the openai SDK at the base URL shown.
        await create(page, "openai", "chat-api")
        await page.get_by_role("heading", name="Endpoint created").wait_for()
        base_url = await page.get_by_role("textbox", name="Base URL").input_value()
        first = await page.get_by_role("textbox", name="api_key (shown once)").input_value()
        assert first in await page.locator("pre").text_content()  # the snippet uses the first key
        await page.get_by_role("button", name="Create an API key").click()
        await page.get_by_text("Copy the key now").wait_for()
        key = await page.get_by_role("textbox", name="API key", exact=True).input_value()
        assert key != first and key in await page.locator("pre").text_content()
        await shoot(page, "12-endpoint-openai")
        client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0)
        reply = await client.chat.completions.create(model="support", messages=[{"role": "user", "content": "hi"}])
        assert "hi" in (reply.choices[0].message.content or "")
        await client.close()

        # discord: the interactions URL, and "Register commands" says what is missing.
        await create(page, "discord", "disco", Application_ID="123456789012", Public_key="a" * 64)
        await page.get_by_role("heading", name="Endpoint created").wait_for()
        await page.get_by_role("textbox", name="Interactions Endpoint URL").wait_for()
        await page.get_by_role("button", name="Register commands").click()
        await page.get_by_text("registering commands needs the endpoint's bot_token").wait_for()
        await shoot(page, "13-endpoint-discord")

        # disable / enable, then an app that endpoints still use can't be removed: the error says why.
        await page.get_by_role("button", name="Disable").click()
        await page.get_by_role("heading", name="disco disabled").wait_for()
        assert (await stack.client.post(await endpoint_url(page), content=b"{}")).status_code == 404
        await page.get_by_role("button", name="Enable").click()
        await page.get_by_role("heading", name="disco enabled").wait_for()
        await page.get_by_role("link", name="Apps").click()
        await page.get_by_role("button", name="Remove support").click()
        await page.get_by_role("button", name="Remove", exact=True).click()
        await page.get_by_role("alert").filter(has_text="support").wait_for()
        assert (await stack.admin("GET", "/apps/support")).status_code == 200
        await shoot(page, "14-apps-remove-refused")


async def endpoint_url(page: Any) -> str:
    url: str = await page.get_by_role("textbox", name="Endpoint URL", exact=True).input_value()
    return url
