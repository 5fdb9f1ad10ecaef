"""Installed Dify packages on two gateway replicas sharing Redis: an endpoint minted on one answers
on the other (the installation found in the shared records), storage is shared, and an upgrade
keeps the endpoint's URL while the new version answers on both."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.difyplugins.package import pack_directory
from gateway.host.runtime import open_gateway
from gateway.records.apps import AppIn
from gateway.testing.simulator import RunningSimulator
from tests import test_difyruntime_endpoints as endpoints
from tests.support.difyplugins import BOT_ENDPOINTS, Endpoint, Permission, write_plugin
from tests.test_difyruntime_endpoints import APP_SELECTOR, Live, live_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.redis]

# The same session fixtures (one Python lookup, one venv directory for the session).
python_for_plugins = endpoints.python_for_plugins
venv_dir = endpoints.venv_dir

VERSION = Endpoint(
    "version",
    "/version",
    "GET",
    """
    return Response(VERSION_TEXT, status=200, content_type="text/plain")
    """,
)


def _package(root: Path, version: str) -> bytes:
    endpoints = (*BOT_ENDPOINTS, VERSION)
    directory = write_plugin(
        root / version,
        "bot",
        endpoints,
        version=version,
        permission=Permission(app=True, storage=4096),
        settings=APP_SELECTOR,
    )
    source = directory / "endpoints" / "version.py"
    source.write_text(f'VERSION_TEXT = "v{version}"\n' + source.read_text())
    return pack_directory(directory)


async def _wait_for(live: Live, url: str, text: str) -> None:
    for _ in range(200):
        response = await live.client.get(live.at(url) + "/version")
        if response.status_code == 200 and response.text == text:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered {text!r}")


async def test_two_replicas_serve_one_installation(
    tmp_path: Path,
    redis_db: str,
    venv_dir: Path,
    python_for_plugins: tuple[str, str],
    dify_simulator: RunningSimulator,
) -> None:
    shared = {"store": redis_db, "plugin_dir": str(tmp_path / "plugins"), "allow_unsigned_plugins": True}
    python = python_for_plugins[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        live_gateway(tmp_path / "a", venv_dir, python, {}, **shared) as first,
        live_gateway(tmp_path / "b", venv_dir, python, {}, **shared) as second,
    ):
        await first.gateway.dify_plugins.install(_package(tmp_path, "0.0.1"), allow_unsigned=True)
        await first.gateway.apps.add(
            AppIn.model_validate(
                {"name": "assistant", "base_url": dify_simulator.base_url, "api_key": dify_simulator.api_key}
            )
        )
        _, url = await first.gateway.endpoints.create("tests/bot", ["assistant"], {})
        on_second = await second.client.post(second.at(url) + "/chat", json={"query": "hi"})
        assert on_second.status_code == 200, on_second.text
        assert on_second.json()["answer"] == "You said: hi" and on_second.json()["count"] == 1
        on_first = await first.client.post(first.at(url) + "/chat", json={"query": "again"})
        assert on_first.json()["count"] == 2  # one storage for the installation, on every replica

        await first.gateway.dify_plugins.upgrade(_package(tmp_path, "0.0.2"), allow_unsigned=True)
        await _wait_for(first, url, "v0.0.2")  # the same URL, the new version
        await _wait_for(second, url, "v0.0.2")  # the other replica follows the records
        assert (await second.client.post(second.at(url) + "/chat", json={"query": "x"})).json()["count"] == 3

        # A process that runs no plugin (the CLI's `plugins list`) shows the state the servers published.
        installation = await first.gateway.dify_plugins.get("tests/bot")
        assert first.gateway.dify_plugins.runtime_state(installation) == "running"
        state = None
        for _ in range(100):
            cli = await open_gateway(first.gateway.settings)
            try:
                state = cli.dify_plugins.runtime_state(installation)
            finally:
                await cli.aclose()
            if state == "running":
                break
            await asyncio.sleep(0.1)
        assert state == "running"
