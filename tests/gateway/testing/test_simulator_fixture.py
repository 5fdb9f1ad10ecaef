"""The `dify_simulator` fixture, as a third-party plugin's tests get it: from the `pytest11` entry
point of the installed package (no conftest here defines it), on a real server."""

from __future__ import annotations

from importlib.metadata import entry_points

import httpx
import pytest

from gateway.simulator.config import SimulatorConfig
from gateway.testing import FakeContext, RunningSimulator, running_simulator
from tests.gateway.testing.test_context import plugin

pytestmark = pytest.mark.anyio


def test_the_fixtures_come_from_the_installed_entry_point(pytestconfig: pytest.Config) -> None:
    found = [e for e in entry_points(group="pytest11") if e.value == "gateway.testing.pytest_plugin"]
    assert len(found) == 1, "the pytest11 entry point is not installed: reinstall the project (pip install -e .)"
    [entry] = found
    assert pytestconfig.pluginmanager.get_plugin(entry.name) is not None


async def test_the_simulator_runs_on_a_real_server(dify_simulator: RunningSimulator) -> None:
    headers = {"authorization": f"Bearer {dify_simulator.api_key}"}
    async with httpx.AsyncClient() as http:
        info = await http.get(f"{dify_simulator.base_url}/info", headers=headers)
        refused = await http.get(f"{dify_simulator.base_url}/info", headers={"authorization": "Bearer app-wrong"})
    assert info.status_code == 200 and info.json()["mode"] == "chat"
    assert refused.status_code == 401


@pytest.mark.parametrize(
    "dify_simulator_config", [SimulatorConfig(mode="completion", answer="Fixed.", first_token_latency=0)]
)
async def test_a_context_asks_the_running_simulator(dify_simulator: RunningSimulator) -> None:
    async with FakeContext(plugin, {"token": "t"}, apps={"remote": dify_simulator}) as ctx:
        assert ctx.apps.get().mode == "completion"
        answer = await ctx.apps.ask("hello", user="u1")
    assert answer.text == "Fixed."
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{dify_simulator.url}/_sim/stats")).json()
    assert (stats["generation_requests"], stats["streams_completed"]) == (1, 1)


def test_a_sync_test_can_run_one_too() -> None:
    with running_simulator() as simulator:
        info = httpx.get(f"{simulator.base_url}/info", headers={"authorization": f"Bearer {simulator.api_key}"})
    assert info.status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{simulator.base_url}/info")  # stopped with the block
