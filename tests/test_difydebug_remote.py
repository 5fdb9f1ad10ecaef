"""Remote debugging of a Dify plugin: a plugin written with the real `dify_plugin` SDK, run the way
its developer runs it (`INSTALL_METHOD=remote`, `REMOTE_INSTALL_URL`, `REMOTE_INSTALL_KEY`), connects
to a real gateway under uvicorn, registers with its declarations and answers through an endpoint;
stopped, its endpoint answers 503 with Retry-After; restarted, the same URL answers again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.admin.pluginrows import plugin_listing
from gateway.difyplugins.package import pack_directory
from gateway.exceptions import Conflict
from gateway.host.runtime import open_gateway
from gateway.records.installations import REMOTE_DEBUG_ORIGIN
from tests import test_difyruntime_endpoints as runtime_tests
from tests.support.difydebug import DebugLive, DeveloperPlugin, debug_gateway, declare, eventually
from tests.support.difyplugins import ECHO_ENDPOINTS, write_plugin
from tests.test_difyruntime_endpoints import ECHO_SETTINGS

pytestmark = [pytest.mark.anyio, pytest.mark.live]

python_for_plugins = runtime_tests.python_for_plugins
KEY = "tests/echo"


@pytest.fixture
async def live(tmp_path: Path, python_for_plugins: tuple[str, str]) -> AsyncIterator[DebugLive]:
    async with debug_gateway(tmp_path, python_for_plugins[0], plugin_debug_attempts=3) as running:
        yield running


@pytest.fixture
async def developer(tmp_path: Path, python_for_plugins: tuple[str, str]) -> AsyncIterator[DeveloperPlugin]:
    directory = write_plugin(tmp_path / "dev", "echo", ECHO_ENDPOINTS, settings=ECHO_SETTINGS)
    plugin = await DeveloperPlugin.build(directory, *python_for_plugins)
    try:
        yield plugin
    finally:
        await plugin.stop()


async def _connected(live: DebugLive) -> bool:
    return live.gateway.plugin_debug.connections.state(KEY) == "connected"


async def _handshake(live: DebugLive, key: str) -> bytes:
    """What the gateway answers a raw handshake with `key` (the connection is then closed)."""
    host, port = live.debug_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b'{"type":"handshake","data":{"key":"%s"}}\n' % key.encode())
        await writer.drain()
        return await reader.read()  # until the gateway closes it
    finally:
        writer.close()


async def test_a_debugged_plugin_registers_answers_and_survives_a_restart(
    live: DebugLive, developer: DeveloperPlugin
) -> None:
    _, key = await live.gateway.plugin_debug.keys.issue("default")
    assert key is not None
    await developer.start(live.debug_address, key)
    await eventually(lambda: _connected(live), "the plugin connected")

    # Registered like an installed package: origin remote-debug, listed as connected.
    installation = await live.gateway.dify_plugins.get(KEY)
    assert installation.origin == REMOTE_DEBUG_ORIGIN and not installation.signed
    assert live.gateway.dify_plugins.runtime_state(installation) == "connected"
    assert [e["path"] for e in installation.endpoints][:2] == ["/echo/<path:rest>", "/ping"]
    # A process that holds no connection (the CLI's `plugins list`) reads the state from the store.
    cli = await open_gateway(live.gateway.settings.with_changes(plugin_debug_addr=""))
    try:
        listed = await plugin_listing(cli)
    finally:
        await cli.aclose()
    row = next(p for p in listed["dify_plugins"] if p["name"] == KEY)
    assert (row["origin"], row["runtime_state"]) == ("remote-debug", "connected")
    metrics = (await live.client.get(live.url + "/metrics")).text
    assert 'gateway_dify_plugin_debug_connected{plugin="tests/echo"} 1' in metrics
    assert 'gateway_dify_plugin_state{plugin="tests/echo"' not in metrics  # no process of ours

    _, url = await live.gateway.endpoints.create(KEY, [], {"token": "s3cret-token"})
    answer = await live.client.post(live.at(url) + "/echo/a?x=1", content=b"hello", headers={"x-custom": "kept"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-plugin"] == "echo"
    body = answer.json()
    assert (body["rest"], body["query"], body["header"], body["body"]) == ("a", "x=1", "kept", "hello")
    assert body["settings"]["token"] == "s3cret-token"  # the endpoint's secret, decrypted for the plugin

    async with live.client.stream("GET", live.at(url) + "/stream?n=3") as streamed:
        assert streamed.status_code == 201
        assert b"".join([chunk async for chunk in streamed.aiter_raw()]) == b"chunk-0;chunk-1;chunk-2;"

    # A reverse call the manifest does not declare is refused over TCP as over stdio.
    denied = await live.client.post(live.at(url) + "/llm", content=b"{}")
    assert "permission denied, you need to enable storage access" in denied.json()["storage"]

    # The developer stops the plugin: its endpoint answers 503 with Retry-After, never a 404.
    await developer.stop()
    await eventually(lambda: _not_connected(live), "the gateway saw the plugin leave")
    down = await live.client.get(live.at(url) + "/ping")
    assert down.status_code == 503, down.text
    assert int(down.headers["retry-after"]) >= 1
    assert "not connected" in down.json()["error"]["message"]
    assert live.gateway.dify_plugins.runtime_state(await live.gateway.dify_plugins.get(KEY)) == "disconnected"

    # ...and restarts it: the same URL answers again, with nothing to redo.
    await developer.start(live.debug_address, key)
    await eventually(lambda: _answers(live, url), "the restarted plugin answered on the same URL")

    # Removing it is refused while its endpoint uses it; with --disable-endpoints its connection closes.
    with pytest.raises(Conflict):
        await live.gateway.dify_plugins.remove(KEY)
    await live.gateway.dify_plugins.remove(KEY, disable_endpoints=True)
    await eventually(lambda: _not_connected(live), "the removed plugin's connection was closed")


async def _not_connected(live: DebugLive) -> bool:
    return not await _connected(live)


async def _answers(live: DebugLive, url: str) -> bool:
    response = await live.client.get(live.at(url) + "/ping")
    return response.status_code == 200 and response.text == "pong"


async def test_a_wrong_key_closes_the_connection_and_repeated_failures_are_rate_limited(live: DebugLive) -> None:
    await live.gateway.plugin_debug.keys.issue("default")
    assert await _handshake(live, "dgdk_wrong") == b"handshake failed, invalid key\n"
    assert await _handshake(live, "not even close") == b"handshake failed, invalid key\n"
    assert await _handshake(live, "") == b"handshake failed, invalid key\n"
    # Three failures a minute from this address (GATEWAY_PLUGIN_DEBUG_ATTEMPTS=3): refused before reading.
    _, key = await live.gateway.plugin_debug.keys.issue("default", rotate=True)
    assert key is not None
    assert await _handshake(live, key) == b"handshake failed, too many attempts; try again later\n"
    assert await live.gateway.dify_plugins.all() == []  # nothing registered


async def test_a_rotated_key_refuses_the_old_one(live: DebugLive, developer: DeveloperPlugin) -> None:
    _, old = await live.gateway.plugin_debug.keys.issue("default")
    _, new = await live.gateway.plugin_debug.keys.issue("default", rotate=True)
    assert old and new and old != new
    assert await _handshake(live, old) == b"handshake failed, invalid key\n"
    await developer.start(live.debug_address, new)
    await eventually(lambda: _connected(live), "the plugin connected with the new key")


async def test_a_plugin_cannot_take_the_key_of_an_installed_package(
    live: DebugLive, developer: DeveloperPlugin, tmp_path: Path
) -> None:
    package = write_plugin(tmp_path / "pkg", "echo", ECHO_ENDPOINTS[:2], settings=ECHO_SETTINGS)
    await live.gateway.dify_plugins.install(pack_directory(package), allow_unsigned=True)
    _, key = await live.gateway.plugin_debug.keys.issue("default")
    assert key is not None
    said = await declare(live.debug_address, key)
    assert said.startswith(b"register failed: tests/echo is installed here as a package")
    assert (await live.gateway.dify_plugins.get(KEY)).origin == "dify-package"
