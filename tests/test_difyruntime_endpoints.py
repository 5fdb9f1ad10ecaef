"""Dify plugins written with the real `dify_plugin` SDK, run by the gateway on Python >= 3.12 and
reached through endpoints on a real uvicorn; the Dify simulator answers their reverse calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager

from gateway.difyplugins.package import read_directory
from gateway.difyplugins.runtime import InstallationStorage, PluginSpec
from gateway.host.runtime import Gateway
from gateway.http.app import create_app
from gateway.records.apps import AppIn
from gateway.simulator.config import SimulatorConfig
from gateway.testing.simulator import RunningSimulator
from tests.support.difyplugins import (
    BOT_ENDPOINTS,
    ECHO_ENDPOINTS,
    Permission,
    plugin_python,
    shared_venv_dir,
    write_plugin,
)
from tests.support.gateway import admin_headers, base_url, listening_socket, make_settings

pytestmark = [pytest.mark.anyio, pytest.mark.live]

APP_SELECTOR: list[dict[str, Any]] = [
    {"name": "app", "type": "app-selector", "required": True, "label": {"en_US": "App"}}
]
ECHO_SETTINGS: list[dict[str, Any]] = [
    {"name": "token", "type": "secret-input", "required": True, "label": {"en_US": "Token"}},
    {
        "name": "mode",
        "type": "select",
        "options": [{"value": "a", "label": {"en_US": "A"}}, {"value": "b", "label": {"en_US": "B"}}],
        "default": "a",
        "label": {"en_US": "Mode"},
    },
    {"name": "loud", "type": "boolean", "default": False, "label": {"en_US": "Loud"}},
]


@pytest.fixture(scope="session")
def python_for_plugins() -> tuple[str, str]:
    found = plugin_python()
    if isinstance(found, str):
        pytest.skip(f"no Python >= 3.12 for Dify plugins: {found}")
    return found


@pytest.fixture(scope="session")
def venv_dir() -> Path:
    """One venv directory for the session (whichever module asks): the test plugins share their
    requirements, so pip runs once."""
    path = shared_venv_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PluginSpec]:
    root = tmp_path_factory.mktemp("dify-plugins")
    echo = write_plugin(root, "echo", ECHO_ENDPOINTS, settings=ECHO_SETTINGS)
    bot = write_plugin(root, "bot", BOT_ENDPOINTS, permission=Permission(app=True, storage=4096), settings=APP_SELECTOR)
    return {
        spec.key: spec
        for spec in (
            PluginSpec.from_package(read_directory(echo), echo),
            PluginSpec.from_package(read_directory(bot), bot),
        )
    }


@dataclass
class Live:
    gateway: Gateway
    url: str
    client: httpx.AsyncClient

    def at(self, endpoint_url: str) -> str:
        return self.url + endpoint_url.removeprefix(self.gateway.settings.public_url)


@contextlib.asynccontextmanager
async def live_gateway(
    tmp_path: Path, venv_dir: Path, python: str, specs: dict[str, PluginSpec], **changes: object
) -> AsyncIterator[Live]:
    settings = make_settings(tmp_path, plugin_venv_dir=str(venv_dir), plugin_python=python, **changes)
    app = create_app(settings, run_workers=False)
    async with LifespanManager(app) as manager:
        gateway: Gateway = manager._state["gateway"]
        for spec in specs.values():
            gateway.dify_runtime.register(spec)
        sock = listening_socket()
        server = uvicorn.Server(uvicorn.Config(manager.app, log_level="warning", lifespan="off", proxy_headers=False))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(timeout=120) as client:
                yield Live(gateway, base_url(sock), client)
        finally:
            server.should_exit = True
            await task
            sock.close()


@pytest.fixture
async def live(
    tmp_path: Path, venv_dir: Path, python_for_plugins: tuple[str, str], plugins: dict[str, PluginSpec]
) -> AsyncIterator[Live]:
    async with live_gateway(tmp_path, venv_dir, python_for_plugins[0], plugins) as running:
        yield running


async def _echo_endpoint(live: Live) -> str:
    _, url = await live.gateway.endpoints.create("tests/echo", [], {"token": "s3cret-token", "loud": True})
    return url


async def test_an_echo_endpoint_gets_the_raw_request_and_answers_through_the_plugin(live: Live) -> None:
    url = await _echo_endpoint(live)
    response = await live.client.post(
        live.at(url) + "/echo/a/b?z=1&a=%20two&a=3",
        content=b'{"hello": "world"}',
        headers={"x-custom": "kept", "x-forwarded-for": "6.6.6.6", "x_sneaky": "dropped"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-plugin"] == "echo"
    body = response.json()
    assert body["method"] == "POST"
    assert body["rest"] == "a/b"
    assert body["query"] == "z=1&a=%20two&a=3"  # raw, as sent: Dify would re-sort and re-encode it
    assert body["forwarded_for"] == body["real_ip"] == "127.0.0.1"  # the address the gateway saw, not the forged one
    assert body["header"] == "kept"
    assert body["body"] == '{"hello": "world"}'
    # Secrets decrypted for the plugin, defaults filled in, booleans as booleans.
    assert body["settings"] == {"token": "s3cret-token", "mode": "a", "loud": True}
    status = live.gateway.dify_runtime.status("tests/echo")
    assert status.state == "running" and status.pid


async def test_unknown_routes_and_methods_are_the_gateways_404_and_405(live: Live) -> None:
    url = await _echo_endpoint(live)
    missing = await live.client.get(live.at(url) + "/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = await live.client.post(live.at(url) + "/ping")
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
    ok = await live.client.get(live.at(url) + "/ping")
    assert (ok.status_code, ok.text) == (200, "pong")


async def test_a_generator_response_streams_chunk_by_chunk(live: Live) -> None:
    url = await _echo_endpoint(live)
    async with live.client.stream("GET", live.at(url) + "/stream?n=4") as response:
        assert response.status_code == 201
        chunks = [chunk async for chunk in response.aiter_raw() if chunk]
    assert b"".join(chunks) == b"chunk-0;chunk-1;chunk-2;chunk-3;"
    assert len(chunks) >= 2  # relayed as produced, not assembled first


async def test_a_large_unstreamed_answer_is_relayed_whole(live: Live) -> None:
    url = await _echo_endpoint(live)
    size = 6 * 1024 * 1024  # one stdout line of 12 MiB hex: past Dify's 5 MiB line limit
    response = await live.client.get(live.at(url) + f"/big?bytes={size}")
    assert response.status_code == 200
    assert len(response.content) == size


async def test_many_requests_at_once_share_one_process(live: Live) -> None:
    url = await _echo_endpoint(live)
    responses = await asyncio.gather(
        *(live.client.post(live.at(url) + f"/echo/{i}", content=str(i).encode()) for i in range(20))
    )
    assert [r.json()["rest"] for r in responses] == [str(i) for i in range(20)]
    assert live.gateway.dify_runtime.status("tests/echo").restarts == 0


async def test_a_plugin_exception_is_a_502_without_its_text(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    url = await _echo_endpoint(live)
    response = await live.client.post(live.at(url) + "/boom", content=b"{}")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "plugin_error"
    assert "hunter2" not in response.text
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.plugins.tests/echo"]
    assert any("RuntimeError" in line or "hunter2" in line for line in logged)


async def test_a_crash_mid_request_is_a_503_then_the_plugin_is_restarted(live: Live) -> None:
    url = await _echo_endpoint(live)
    assert (await live.client.get(live.at(url) + "/ping")).status_code == 200
    first_pid = live.gateway.dify_runtime.status("tests/echo").pid
    crashed = await live.client.post(live.at(url) + "/crash", content=b"{}")
    assert crashed.status_code == 503
    assert crashed.json()["error"]["code"] == "plugin_unavailable"
    assert int(crashed.headers["retry-after"]) >= 1
    for _ in range(300):  # restarted after its backoff
        status = live.gateway.dify_runtime.status("tests/echo")
        if status.state == "running":
            break
        await asyncio.sleep(0.05)
    again = await live.client.get(live.at(url) + "/ping")
    assert again.status_code == 200
    status = live.gateway.dify_runtime.status("tests/echo")
    assert status.restarts == 1 and status.pid != first_pid and status.last_exit == "exit code 3"
    metrics = (await live.client.get(live.url + "/metrics")).text
    assert 'gateway_dify_plugin_restarts_total{plugin="tests/echo"} 1' in metrics


async def test_a_plugin_that_keeps_crashing_is_in_crash_loop(
    tmp_path: Path, venv_dir: Path, python_for_plugins: tuple[str, str], plugins: dict[str, PluginSpec]
) -> None:
    async with live_gateway(tmp_path, venv_dir, python_for_plugins[0], plugins) as live:
        url = await _echo_endpoint(live)
        for _ in range(3):
            for _ in range(400):
                if live.gateway.dify_runtime.status("tests/echo").state in ("running", "stopped"):
                    break
                await asyncio.sleep(0.05)
            response = await live.client.post(live.at(url) + "/crash", content=b"{}")
            assert response.status_code == 503
        for _ in range(100):
            if live.gateway.dify_runtime.status("tests/echo").state == "crash-loop":
                break
            await asyncio.sleep(0.02)
        status = live.gateway.dify_runtime.status("tests/echo")
        assert status.state == "crash-loop" and status.restarts == 3
        refused = await live.client.get(live.at(url) + "/ping")
        assert refused.status_code == 503 and "retry-after" in refused.headers
        metrics = (await live.client.get(live.url + "/metrics")).text
        assert 'gateway_dify_plugin_state{plugin="tests/echo",state="crash-loop"} 1' in metrics


async def _bot_endpoint(live: Live, simulator: RunningSimulator, apps: tuple[str, ...] = ("assistant",)) -> str:
    for name in apps:
        await live.gateway.apps.add(
            AppIn.model_validate(
                {"name": name, "base_url": simulator.base_url, "api_key": simulator.api_key, "mode": "chat"}
            )
        )
    _, url = await live.gateway.endpoints.create("tests/bot", list(apps), {})
    return url


async def test_a_bot_calls_its_app_blocking_and_keeps_storage(live: Live, dify_simulator: RunningSimulator) -> None:
    url = await _bot_endpoint(live, dify_simulator)
    first = await live.client.post(live.at(url) + "/chat", json={"query": "hello"})
    assert first.status_code == 200, first.text
    assert first.json()["answer"] == "You said: hello"
    assert first.json()["conversation_id"]
    assert first.json()["count"] == 1
    second = await live.client.post(live.at(url) + "/chat", json={"query": "again"})
    assert second.json()["count"] == 2  # storage kept between requests (in the gateway's store)
    forgot = await live.client.post(live.at(url) + "/forget", content=b"{}")
    assert forgot.json() == {"exists": False}


async def test_a_bot_streams_its_apps_answer(live: Live, dify_simulator: RunningSimulator) -> None:
    url = await _bot_endpoint(live, dify_simulator)
    async with live.client.stream("POST", live.at(url) + "/chat/stream", json={"query": "stream me"}) as response:
        assert response.status_code == 200
        text = (await response.aread()).decode()
    assert text == "You said: stream me"


async def test_a_bot_fetches_its_apps_description(live: Live, dify_simulator: RunningSimulator) -> None:
    url = await _bot_endpoint(live, dify_simulator)
    response = await live.client.get(live.at(url) + "/app-info")
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"id": "assistant", "name": "assistant", "mode": "chat"}}


@pytest.mark.parametrize("dify_simulator_config", [SimulatorConfig(mode="workflow", first_token_latency=0)])
async def test_a_bot_runs_a_workflow_app_blocking_and_streaming(live: Live, dify_simulator: RunningSimulator) -> None:
    await live.gateway.apps.add(
        AppIn.model_validate(
            {"name": "flow", "base_url": dify_simulator.base_url, "api_key": dify_simulator.api_key, "mode": "workflow"}
        )
    )
    _, url = await live.gateway.endpoints.create("tests/bot", ["flow"], {})
    blocking = await live.client.post(live.at(url) + "/workflow", json={"query": "run"})
    assert blocking.status_code == 200, blocking.text
    result = blocking.json()
    assert result["workflow_run_id"] and result["data"]["status"] == "succeeded"
    assert "You said: run" in json.dumps(result["data"]["outputs"])
    streamed = await live.client.post(live.at(url) + "/workflow?mode=streaming", json={"query": "run"})
    events = streamed.json()
    assert events[0] == "workflow_started" and events[-1] == "workflow_finished"


async def test_a_bot_can_only_call_the_apps_bound_to_its_endpoint(live: Live, dify_simulator: RunningSimulator) -> None:
    url = await _bot_endpoint(live, dify_simulator)
    response = await live.client.post(live.at(url) + "/other", content=b"{}")
    assert response.json()["error"] == "app 'not-bound' is not bound to this endpoint"


async def test_undeclared_reverse_calls_get_difys_permission_denied(live: Live) -> None:
    url = await _echo_endpoint(live)
    app = await live.client.post(live.at(url) + "/app", content=b"{}")
    assert app.json()["error"] == "permission denied, you need to enable app access in plugin manifest"
    storage = await live.client.post(live.at(url) + "/llm", content=b"{}")
    assert storage.json()["storage"] == "permission denied, you need to enable storage access in plugin manifest"


def test_the_endpoint_settings_come_from_the_packages_form(plugins: dict[str, PluginSpec]) -> None:
    from gateway.difyplugins.runtime import settings_model

    model = settings_model("tests/echo", plugins["tests/echo"].form)
    fields = model.model_fields
    assert set(fields) == {"token", "mode", "loud"}
    assert fields["token"].is_required()
    values = model.model_validate({"token": "x"})
    assert json.loads(values.model_dump_json()) == {"token": "**********", "mode": "a", "loud": False}


async def test_a_request_past_its_deadline_is_a_504(
    tmp_path: Path, venv_dir: Path, python_for_plugins: tuple[str, str], plugins: dict[str, PluginSpec]
) -> None:
    async with live_gateway(tmp_path, venv_dir, python_for_plugins[0], plugins, plugin_request_timeout=1.0) as live:
        url = await _echo_endpoint(live)
        response = await live.client.post(live.at(url) + "/slow?seconds=4", content=b"{}")
        assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"
        # A streamed answer is cut at the deadline (its head has gone out already).
        async with live.client.stream("GET", live.at(url) + "/stream?n=60") as streamed:
            assert streamed.status_code == 201
            text = (await streamed.aread()).decode()
        assert text.startswith("chunk-0;") and "chunk-59;" not in text
        # The process is not at fault: it goes on serving.
        assert (await live.client.get(live.at(url) + "/ping")).status_code == 200
        assert live.gateway.dify_runtime.status("tests/echo").restarts == 0


async def test_a_hung_plugin_is_killed_and_restarted(
    tmp_path: Path, venv_dir: Path, python_for_plugins: tuple[str, str], plugins: dict[str, PluginSpec]
) -> None:
    async with live_gateway(tmp_path, venv_dir, python_for_plugins[0], plugins, plugin_heartbeat_timeout=2.0) as live:
        url = await _echo_endpoint(live)
        hung = await live.client.post(live.at(url) + "/freeze", content=b"{}")
        assert hung.status_code == 503
        status = live.gateway.dify_runtime.status("tests/echo")
        assert status.restarts == 1 and status.last_exit == "no heartbeat for 2s"
        for _ in range(300):
            if live.gateway.dify_runtime.status("tests/echo").state == "running":
                break
            await asyncio.sleep(0.05)
        assert (await live.client.get(live.at(url) + "/ping")).status_code == 200


async def test_storage_is_bounded_by_the_declared_size(live: Live, dify_simulator: RunningSimulator) -> None:
    url = await _bot_endpoint(live, dify_simulator)
    storage = InstallationStorage(live.gateway.store, "tests/bot", 4096)
    await storage.set("filler", "00" * 4096)  # all of it
    response = await live.client.post(live.at(url) + "/chat", json={"query": "hello"})
    assert response.status_code == 502  # the plugin's storage.set raised (its own code did not catch it)
    await storage.delete("filler")
    response = await live.client.post(live.at(url) + "/chat", json={"query": "hello"})
    assert response.status_code == 200 and response.json()["count"] == 1


async def test_plugin_processes_stop_with_the_gateway(
    tmp_path: Path, venv_dir: Path, python_for_plugins: tuple[str, str], plugins: dict[str, PluginSpec]
) -> None:
    async with live_gateway(tmp_path, venv_dir, python_for_plugins[0], plugins) as live:
        url = await _echo_endpoint(live)
        assert (await live.client.get(live.at(url) + "/ping")).status_code == 200
        pid = live.gateway.dify_runtime.status("tests/echo").pid
        assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_the_admin_api_mints_an_endpoint_for_a_package(
    tmp_path: Path, venv_dir: Path, python_for_plugins: tuple[str, str], plugins: dict[str, PluginSpec]
) -> None:
    async with live_gateway(tmp_path, venv_dir, python_for_plugins[0], plugins) as live:
        created = await live.client.post(
            live.url + "/admin/api/endpoints",
            json={"plugin": "tests/echo", "settings": {"token": "s3cret", "mode": "b"}},
            headers=admin_headers(),
        )
        assert created.status_code == 201, created.text
        assert "s3cret" not in created.text
        assert created.json()["settings"]["token"] != "s3cret"
        wrong = await live.client.post(
            live.url + "/admin/api/endpoints",
            json={"plugin": "tests/echo", "settings": {"token": "x", "mode": "z"}},
            headers=admin_headers(),
        )
        assert wrong.status_code == 422  # not one of the select's options
        echoed = await live.client.post(live.at(created.json()["url"]) + "/echo/x", content=b"")
        assert echoed.json()["settings"] == {"token": "s3cret", "mode": "b", "loud": False}
