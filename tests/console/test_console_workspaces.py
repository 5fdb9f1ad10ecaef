"""The console with workspaces, in a real browser: the operator switches workspace and manages
workspaces and tokens; a workspace token logs in to its workspace alone; a viewer sees everything
read-only; a revoked token's open console is logged out at its next request."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import console_stack
from tests.console.test_console_browser import shoot
from tests.support.gateway import ADMIN_TOKEN

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.browser]


async def log_in(browser: Any, gateway: str, token: str) -> Any:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{gateway}/console/")
    await page.get_by_label("Admin token or workspace token").fill(token)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="Overview").wait_for()
    return page


async def test_workspaces_tokens_and_who_is_logged_in(tmp_path: Path, browser: Any) -> None:
    async with console_stack(tmp_path) as stack:
        app = {"name": "support", "base_url": f"{stack.simulator}/v1", "api_key": "app-simulator"}
        assert (await stack.admin("POST", "/apps", json=app)).status_code == 201
        operator = await log_in(browser, stack.gateway, ADMIN_TOKEN)
        header = operator.locator("header")
        await header.get_by_text("operator").wait_for()
        assert await header.get_by_label("Workspace").input_value() == "default"

        # -- the Workspaces screen: create a workspace, then a token of it (shown once) --------------
        await operator.get_by_role("link", name="Workspaces").click()
        await operator.get_by_role("heading", name="Workspaces", exact=True).first.wait_for()
        await operator.get_by_label("Name", exact=True).fill("Bad Name")
        await operator.get_by_role("button", name="Create workspace").click()
        await operator.get_by_role("alert").filter(has_text="pattern").first.wait_for()
        await operator.get_by_label("Name", exact=True).fill("team-a")
        await operator.get_by_role("button", name="Create workspace").click()
        await operator.locator('tr[data-workspace="team-a"]').wait_for()
        await header.get_by_label("Workspace").locator('option[value="team-a"]').wait_for(state="attached")

        async def new_token(role: str, label: str) -> str:
            await operator.get_by_label("Workspace", exact=True).nth(1).select_option("team-a")
            await operator.get_by_label("Role").select_option(role)
            await operator.get_by_label("Label").fill(label)
            await operator.get_by_role("button", name="Create token").click()
            await operator.get_by_text(re.compile(f"An? {role} token of team-a")).wait_for()
            value: str = await operator.get_by_role("textbox", name="Workspace token (shown once)").input_value()
            assert value.startswith("gwt_at_")
            return value

        admin_token = await new_token("admin", "alice")
        await shoot(operator, "20-workspaces-token-created")
        viewer_token = await new_token("viewer", "auditor")
        tokens = (await stack.admin("GET", "/tokens")).json()["tokens"]
        assert {(t["role"], t["label"]) for t in tokens} == {("admin", "alice"), ("viewer", "auditor")}

        # -- the operator switches workspace: every screen shows that workspace ------------------
        await header.get_by_label("Workspace").select_option("team-a")
        await operator.get_by_role("link", name="Apps").click()
        await operator.get_by_text("No apps yet").wait_for()
        await header.get_by_label("Workspace").select_option("default")
        await operator.get_by_role("heading", name=re.compile("^support")).wait_for()
        await operator.reload()  # the pick is kept for the tab
        await header.get_by_label("Workspace").select_option("team-a")
        await operator.reload()
        await operator.get_by_text("No apps yet").wait_for()
        assert await header.get_by_label("Workspace").input_value() == "team-a"
        await operator.get_by_label("Name", exact=True).fill("sales")
        await operator.get_by_label("Base URL").fill(f"{stack.simulator}/v1")
        await operator.get_by_label("API key").fill("app-simulator")
        await operator.get_by_role("button", name="Add app").click()
        await operator.get_by_text(re.compile("Added sales")).wait_for()
        assert [a["name"] for a in (await stack.admin("GET", "/apps?workspace=team-a")).json()["apps"]] == ["sales"]
        assert [a["name"] for a in (await stack.admin("GET", "/apps")).json()["apps"]] == ["support"]
        created = await stack.admin(
            "POST", "/endpoints?workspace=team-a", json={"plugin": "echo", "apps": ["sales"], "name": "a-echo"}
        )
        assert created.status_code == 201, created.text
        await shoot(operator, "21-apps-operator-in-team-a")

        # -- an admin token of team-a: its workspace only, no operator screens -------------------
        alice = await log_in(browser, stack.gateway, admin_token)
        await alice.locator("header").get_by_text("admin", exact=True).wait_for()
        await alice.locator("header").get_by_text("team-a").wait_for()
        assert await alice.locator("header select").count() == 0
        assert not await alice.get_by_role("link", name="Workspaces").is_visible()
        await alice.get_by_role("link", name="Apps").click()
        await alice.get_by_role("heading", name=re.compile("^sales")).wait_for()
        assert await alice.get_by_role("heading", name=re.compile("^support")).count() == 0
        assert await alice.get_by_role("button", name="Add app").is_visible()
        await alice.get_by_role("link", name="Plugins").click()
        await alice.get_by_text("Installing, upgrading and removing plugins is the operator's").wait_for()
        assert not await alice.get_by_role("heading", name="Install a Dify plugin package").is_visible()
        assert admin_token not in await alice.content()
        await shoot(alice, "22-plugins-workspace-admin")

        # -- a viewer: every screen, read-only with a note ---------------------------------------
        viewer = await log_in(browser, stack.gateway, viewer_token)
        note = viewer.get_by_role("note")
        await note.filter(has_text="Read-only: you are logged in with a viewer token of workspace team-a").wait_for()
        await viewer.get_by_role("link", name="Apps").click()
        await viewer.get_by_role("heading", name=re.compile("^sales")).wait_for()
        await note.wait_for()
        for hidden in ("Add app", "Check sales", "Remove sales"):
            assert not await viewer.get_by_role("button", name=hidden).is_visible(), hidden
        await viewer.get_by_role("link", name="Endpoints").click()
        await viewer.get_by_role("link", name="a-echo").click()
        await viewer.get_by_role("heading", name="Settings").wait_for()
        assert await viewer.get_by_label("Name", exact=True).is_disabled()
        for hidden in ("Rotate URL", "Disable", "Delete", "Save settings"):
            assert not await viewer.get_by_role("button", name=hidden).is_visible(), hidden
        assert viewer_token not in await viewer.content()
        await shoot(viewer, "23-endpoint-viewer")
        await viewer.get_by_role("link", name="Jobs").click()
        await viewer.get_by_role("heading", name="Jobs").wait_for()

        # -- the operator revokes the viewer's token: its open console is logged out at once -----
        await operator.get_by_role("link", name="Workspaces").click()
        viewer_id = next(t["id"] for t in tokens if t["role"] == "viewer")
        await operator.get_by_role("button", name=f"Revoke token {viewer_id}").click()
        await operator.get_by_role("button", name="Revoke token", exact=True).click()
        await operator.locator(f'tr[data-token-id="{viewer_id}"]').get_by_text("revoked").wait_for()
        await shoot(operator, "24-workspaces")
        await viewer.get_by_role("link", name="Overview").click()
        await viewer.get_by_text("Your session has ended. Log in again.").wait_for()
        assert (await viewer.request.get(f"{stack.gateway}/admin/api/apps")).status == 401

        # -- a workspace that still holds apps can't be deleted: the error says why --------------
        await operator.get_by_role("button", name="Delete workspace team-a").click()
        await operator.get_by_role("button", name="Delete workspace", exact=True).click()
        await operator.get_by_role("alert").filter(has_text="still holds").wait_for()

        # -- an empty one can: it leaves the list and the header's switcher -----------------------
        await operator.get_by_label("Name", exact=True).fill("team-b")
        await operator.get_by_role("button", name="Create workspace").click()
        switch = header.get_by_label("Workspace")
        await switch.locator('option[value="team-b"]').wait_for(state="attached")
        await operator.get_by_role("button", name="Delete workspace team-b").click()
        await operator.get_by_role("button", name="Delete workspace", exact=True).click()
        await operator.locator('tr[data-workspace="team-b"]').wait_for(state="detached")
        await switch.locator('option[value="team-b"]').wait_for(state="detached")
        names = [w["name"] for w in (await stack.admin("GET", "/workspaces")).json()["workspaces"]]
        assert names == ["default", "team-a"]
