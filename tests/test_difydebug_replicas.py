"""Remote debugging across two gateway replicas sharing Redis: the replica holding the plugin's TCP
connection records it (a lease naming its internal address), and a request that lands on the other
replica is forwarded there, its answer (streamed bodies too) relayed back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.records.apps import AppIn
from gateway.testing.simulator import RunningSimulator
from tests import test_difyruntime_endpoints as runtime_tests
from tests.support.difydebug import DebugLive, DeveloperPlugin, debug_gateway, declare, eventually
from tests.support.difyplugins import BOT_ENDPOINTS, ECHO_ENDPOINTS, Permission, write_plugin
from tests.support.gateway import ADMIN_TOKEN
from tests.test_difyruntime_endpoints import APP_SELECTOR, ECHO_SETTINGS

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.redis]

python_for_plugins = runtime_tests.python_for_plugins


async def _holder(live: DebugLive, key: str) -> str | None:
    return await live.gateway.plugin_debug.connections.holder(key)


@dataclass
class Replicas:
    first: DebugLive  # where the developer's plugin connects
    second: DebugLive
    developer: DeveloperPlugin
    key: str  # the debug key


@contextlib.asynccontextmanager
async def connected_to_first(
    tmp_path: Path, redis_db: str, python: tuple[str, str], directory: Path, plugin: str
) -> AsyncIterator[Replicas]:
    """Two replicas on one Redis, the developer's plugin connected to the first."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    developer = await DeveloperPlugin.build(directory, *python)
    async with (
        debug_gateway(tmp_path / "a", python[0], store=redis_db) as first,
        debug_gateway(tmp_path / "b", python[0], store=redis_db) as second,
    ):
        try:
            _, key = await first.gateway.plugin_debug.keys.issue("default")
            assert key is not None
            await developer.start(first.debug_address, key)
            await eventually(lambda: _is(first, plugin, first.url), "the first replica holds the plugin")
            yield Replicas(first, second, developer, key)
        finally:
            await developer.stop()


async def test_a_request_on_the_replica_without_the_connection_is_answered_by_the_holder(
    tmp_path: Path, redis_db: str, python_for_plugins: tuple[str, str]
) -> None:
    directory = write_plugin(tmp_path / "dev", "echo", ECHO_ENDPOINTS, settings=ECHO_SETTINGS)
    async with connected_to_first(tmp_path, redis_db, python_for_plugins, directory, "tests/echo") as replicas:
        first, second, developer, key = replicas.first, replicas.second, replicas.developer, replicas.key
        # Minted through the admin API of the replica that never saw the plugin connect.
        minted = await second.client.post(
            second.url + "/admin/api/endpoints",
            json={"plugin": "tests/echo", "settings": {"token": "s3cret-token"}},
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert minted.status_code in (200, 201), minted.text
        url = minted.json()["url"]

        # On the replica without the connection: forwarded to the holder, the answer relayed.
        answer = await second.client.post(
            second.at(url) + "/echo/x?q=1", content=b"via b", headers={"x-custom": "kept"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-plugin"] == "echo"
        body = answer.json()
        assert (body["rest"], body["query"], body["body"], body["header"]) == ("x", "q=1", "via b", "kept")
        assert body["settings"]["token"] == "s3cret-token"
        async with second.client.stream("GET", second.at(url) + "/stream?n=4") as streamed:
            assert streamed.status_code == 201
            assert b"".join([c async for c in streamed.aiter_raw()]) == b"chunk-0;chunk-1;chunk-2;chunk-3;"
        # A second instance of the plugin on the other replica is refused: the first one keeps it.
        refused = await declare(second.debug_address, key)
        assert refused == b"register failed: plugin tests/echo is connected for debugging to another gateway replica\n"
        assert await _holder(second, "tests/echo") == first.url
        # A route the plugin does not have is the gateway's own 404 on either replica.
        assert (await second.client.get(second.at(url) + "/nothing")).status_code == 404

        # Stopped: neither replica has it; both answer 503 with Retry-After.
        await developer.stop()
        await eventually(lambda: _gone(first, "tests/echo"), "the lease was released")
        for replica in (first, second):
            down = await replica.client.get(replica.at(url) + "/ping")
            assert down.status_code == 503 and down.headers["retry-after"]

        # The developer reconnects to the other replica: the same URL works on both again.
        await developer.start(second.debug_address, key)
        await eventually(lambda: _is(second, "tests/echo", second.url), "the second replica holds the plugin")
        for replica in (first, second):
            again = await replica.client.get(replica.at(url) + "/ping")
            assert (again.status_code, again.text) == (200, "pong")


async def test_reverse_calls_of_a_forwarded_request_are_served_by_the_holder(
    tmp_path: Path, redis_db: str, python_for_plugins: tuple[str, str], dify_simulator: RunningSimulator
) -> None:
    directory = write_plugin(
        tmp_path / "dev", "bot", BOT_ENDPOINTS, permission=Permission(app=True, storage=4096), settings=APP_SELECTOR
    )
    async with connected_to_first(tmp_path, redis_db, python_for_plugins, directory, "tests/bot") as replicas:
        second = replicas.second
        await second.gateway.apps.add(
            AppIn.model_validate(
                {"name": "assistant", "base_url": dify_simulator.base_url, "api_key": dify_simulator.api_key}
            )
        )
        await second.gateway.dify_runtime.find("tests/bot")
        _, url = await second.gateway.endpoints.create("tests/bot", ["assistant"], {})
        chat = await second.client.post(second.at(url) + "/chat", json={"query": "hi"})
        assert chat.status_code == 200, chat.text
        assert chat.json()["answer"] == "You said: hi" and chat.json()["count"] == 1
        streamed = await second.client.post(second.at(url) + "/chat/stream", json={"query": "streamed"})
        assert streamed.status_code == 200 and "streamed" in streamed.text
        # The endpoint's app binding is checked on the holder like anywhere else.
        other = await second.client.post(second.at(url) + "/other", json={})
        assert "not bound" in other.json()["error"]


async def _is(live: DebugLive, key: str, address: str) -> bool:
    return await _holder(live, key) == address


async def _gone(live: DebugLive, key: str) -> bool:
    return await _holder(live, key) is None
