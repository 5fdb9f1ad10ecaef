"""The Plugins screen in a real browser: a Dify package uploaded is verified before anything is
installed, an unsigned one only with an explicit, warned choice; upgrade; remove is refused while
endpoints use the plugin, and offers to disable them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.difyplugins import pack_directory, sign_package
from tests.console.conftest import console_stack
from tests.console.test_console_browser import log_in, shoot
from tests.support.difyplugin import session_keypair, write_echo_plugin

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.browser]


def package_file(tmp_path: Path, name: str, version: str, *, signed: bool) -> Path:
    tree = write_echo_plugin(tmp_path / f"{name}-{version}", version=version, name=name)
    data = pack_directory(tree)
    if signed:
        data = sign_package(data, session_keypair()[0], 1_733_000_000)
    path = tmp_path / f"{name}-{version}{'' if signed else '-unsigned'}.difypkg"
    path.write_bytes(data)
    return path


async def test_upload_verify_install_upgrade_and_remove(tmp_path: Path, browser: Any) -> None:
    (tmp_path / "ops.pem").write_bytes(session_keypair()[1])
    settings = {"plugin_dir": str(tmp_path / "plugins"), "plugin_public_keys": (str(tmp_path / "ops.pem"),)}
    async with console_stack(tmp_path, **settings) as stack:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, stack)
        await page.get_by_role("link", name="Plugins").click()
        installer = page.locator('section[aria-labelledby="install-title"]')

        # -- a signed package: verified first, installed only when confirmed ---------------------
        await installer.get_by_label("Package file (.difypkg)").set_input_files(
            package_file(tmp_path, "echo", "0.0.1", signed=True)
        )
        await installer.get_by_role("heading", name=re.compile("^Verified")).wait_for()
        await installer.get_by_text("Signed with a key you trust, fingerprint").wait_for()
        await installer.get_by_text(re.compile(r"^tester/echo:0\.0\.1@")).wait_for()
        assert (await stack.admin("GET", "/plugins")).json()["dify_plugins"] == []  # nothing installed yet
        await shoot(page, "30-plugins-verified")
        await installer.get_by_role("button", name="Install tester/echo:0.0.1").click()
        card = page.locator('article[data-plugin="tester/echo"]')
        await card.get_by_text("endpoint, storage:1048576").wait_for()
        await card.get_by_text("dify-package").wait_for()
        installed = (await stack.admin("GET", "/plugins")).json()["dify_plugins"]
        assert [(p["name"], p["signature"]) for p in installed] == [("tester/echo", "signed")]

        # -- an unsigned package: a warning, and a choice to make before it can be installed ------
        await installer.get_by_label("Package file (.difypkg)").set_input_files(
            package_file(tmp_path, "other", "0.0.1", signed=False)
        )
        warning = installer.get_by_role("alert").filter(has_text="Not signed")
        await warning.get_by_text("the package is not signed").wait_for()
        install_unsigned = warning.get_by_role("button", name="Install unsigned")
        assert await install_unsigned.is_disabled()
        await shoot(page, "31-plugins-unsigned-warning")
        await warning.get_by_label("I trust this package: install it without a signature").check()
        await install_unsigned.click()
        other = page.locator('article[data-plugin="tester/other"]')
        await other.get_by_text("Unsigned: nobody vouches for this code").wait_for()

        # -- upgrade: the new package is verified too, and must be the same plugin ---------------
        await other.get_by_text("Upgrade tester/other").click()
        await other.get_by_label("New package of tester/other").set_input_files(
            package_file(tmp_path, "echo", "0.0.2", signed=True)
        )
        await other.get_by_text("This package is tester/echo, not tester/other").wait_for()
        await other.get_by_label("New package of tester/other").set_input_files(
            package_file(tmp_path, "other", "0.0.2", signed=True)
        )
        await other.get_by_role("button", name="Upgrade tester/other:0.0.2").click()
        other = page.locator('article[data-plugin="tester/other"]')
        await other.get_by_text("Signed with a key you trust, fingerprint").wait_for()
        await other.get_by_text("0.0.2", exact=True).wait_for()

        # -- an endpoint of the package, made with the settings form drawn from its settings model --
        app = {"name": "support", "base_url": f"{stack.simulator}/v1", "api_key": "app-simulator"}
        assert (await stack.admin("POST", "/apps", json=app)).status_code == 201
        await page.goto(f"{stack.gateway}/console/#/endpoints/new")
        await page.get_by_label("Plugin").select_option("tester/echo")
        await page.get_by_label("Name", exact=True).fill("echo-pkg")
        await page.get_by_label("support (").check()
        await page.get_by_label("Token").fill("package-token")
        await page.get_by_role("button", name="Create endpoint").click()
        await page.get_by_role("heading", name="Endpoint created").wait_for()
        endpoint_id = (await stack.admin("GET", "/endpoints")).json()["endpoints"][0]["id"]
        await page.get_by_text("The package answers at these paths below the URL:").wait_for()
        assert "package-token" not in await page.content()
        await shoot(page, "34-endpoint-dify-package")

        # -- remove: refused while an endpoint uses it; then disable its endpoints and remove -----
        await page.get_by_role("link", name="Plugins").click()
        card = page.locator('article[data-plugin="tester/echo"]')
        await card.get_by_role("button", name="Remove tester/echo").click()
        await page.get_by_role("button", name="Remove plugin").click()
        refused = card.get_by_role("alert").filter(has_text="Not removed")
        await refused.get_by_text(endpoint_id).wait_for()
        await shoot(page, "32-plugins-remove-refused")
        await refused.get_by_role("button", name="Disable its endpoints and remove").click()
        await page.get_by_role("button", name="Disable endpoints and remove").click()
        await card.wait_for(state="detached")
        await page.get_by_text(f"endpoints disabled: {endpoint_id}").wait_for()
        assert (await stack.admin("GET", f"/endpoints/{endpoint_id}")).json()["enabled"] is False
        assert [p["name"] for p in (await stack.admin("GET", "/plugins")).json()["dify_plugins"]] == ["tester/other"]
        await shoot(page, "33-plugins")
