"""Usage, cost and budgets on the console's Overview, in a real browser, after real answers from
the Dify simulator (which reports tokens and prices as Dify does)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import ConsoleStack, console_stack
from tests.console.test_console_browser import log_in, shoot
from tests.support.webhooks import signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.browser]

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def answered(stack: ConsoleStack, name: str, questions: int) -> str:
    """A webhook endpoint `name` asked `questions` questions (answered synchronously); its id."""
    created = await stack.admin(
        "POST",
        "/endpoints",
        json={"plugin": "webhook", "apps": ["support"], "name": name, "settings": {"secret": SECRET}},
    )
    assert created.status_code == 201, created.text
    for i in range(questions):
        body = json.dumps({"query": f"question {i} for {name}", "user": "u1"}).encode()
        asked = await stack.client.post(created.json()["url"], content=body, headers=signed_headers(SECRET, body))
        assert asked.status_code == 200, asked.text
    endpoint_id: str = created.json()["id"]
    return endpoint_id


async def test_usage_and_cost_per_app_and_endpoint_and_budgets(tmp_path: Path, browser: Any) -> None:
    async with console_stack(tmp_path) as stack:
        app = {"name": "support", "base_url": f"{stack.simulator}/v1", "api_key": "app-simulator"}
        assert (await stack.admin("POST", "/apps", json=app)).status_code == 201
        await answered(stack, "hook-busy", 3)
        await answered(stack, "hook-quiet", 1)
        for _ in range(200):  # recorded when each answer ends
            report = (await stack.admin("GET", "/usage?by=endpoint")).json()
            if report["total"]["answers"] == 4:
                break
            await asyncio.sleep(0.05)
        assert report["total"]["answers"] == 4 and report["total"]["cost"], report
        currency = next(iter(report["total"]["cost"]))

        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, stack)
        usage = page.locator('section[aria-labelledby="usage-title"]')
        await usage.get_by_text("(UTC days): 4 answers").wait_for()
        per_endpoint = usage.get_by_role("img", name=re.compile("^Tokens per endpoint this month"))
        label = await per_endpoint.get_attribute("aria-label")
        assert label is not None and "hook-busy:" in label and "3 answers" in label and "hook-quiet:" in label
        assert label.index("hook-busy") < label.index("hook-quiet")  # longest bar first
        await usage.get_by_role("img", name=re.compile(f"^Cost per app this month, {currency}")).wait_for()
        await usage.get_by_role("img", name=re.compile("^Tokens per app this month. support: ")).wait_for()

        # -- a budget: set from the console, shown against what the app used ---------------------
        await page.get_by_label("Covers").select_option("app")
        await page.get_by_label("Target").fill("support")
        await page.get_by_label("Amount").fill("1000000")
        await page.get_by_role("button", name="Set budget").click()
        budget = page.locator('section[aria-labelledby="budgets-title"] tbody tr')
        await budget.get_by_text("app support").wait_for()
        await budget.get_by_text("1,000,000 tokens").wait_for()
        used = report["total"]["total_tokens"]
        await budget.get_by_text(re.compile(f"^{used:,} \\(0%\\)")).wait_for()
        assert (await budget.get_by_role("progressbar").get_attribute("value")) == str(used)
        budgets = (await stack.admin("GET", "/budgets")).json()["budgets"]
        assert [(b["scope"], b["target"], b["tokens"]) for b in budgets] == [("app", "support", 1_000_000)]
        await shoot(page, "50-overview-usage")

        # A bad budget says what is wrong; deleting one asks nothing more of the API.
        await page.get_by_label("Covers").select_option("app")
        await page.get_by_label("Target").fill("")
        await page.get_by_label("Amount").fill("5")
        await page.get_by_role("button", name="Set budget").click()
        await page.get_by_text("needs a target").first.wait_for()
        await budget.get_by_role("button", name="Delete the budget of app support").click()
        await page.get_by_text("No budgets: answers are not limited.").wait_for()
        assert (await stack.admin("GET", "/budgets")).json()["budgets"] == []
