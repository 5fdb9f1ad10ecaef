"""`dify-gateway webhook call` against a live gateway and the Dify simulator: exit codes, --json
shapes and the --stream flag."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from gateway.cli.actions import action_groups
from gateway.cli.main import cli
from gateway.host.registry import PluginRegistry
from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.gateway import ADMIN_TOKEN, SECRET_KEY, admin_headers, live_app, live_server, make_settings

pytestmark = [pytest.mark.anyio, pytest.mark.live]


def full_cli() -> click.Group:
    """The CLI with the plugins' action groups, as `dify-gateway` builds it."""
    group = click.Group("dify-gateway", commands=dict(cli.commands))
    for actions in action_groups(PluginRegistry.from_entry_points()):
        group.add_command(actions)
    return group


@dataclass
class Webhook:
    endpoint_id: str
    env: dict[str, str | None]

    async def call(self, *args: str) -> Result:
        runner = CliRunner()
        # The CLI runs its own event loop: run it in a thread.
        result = await asyncio.to_thread(
            runner.invoke, full_cli(), ["webhook", "call", self.endpoint_id, *args], env=self.env
        )
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[Webhook]:
    config = SimulatorConfig(first_token_latency=0.02, tokens_per_second=0)
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_app(lambda url: create_app(make_settings(tmp_path, public_url=url))) as gateway,
        httpx.AsyncClient(timeout=30) as client,
    ):
        app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "chat"}
        assert (await client.post(f"{gateway}/admin/api/apps", json=app, headers=admin_headers())).status_code == 201
        created = await client.post(
            f"{gateway}/admin/api/endpoints", json={"plugin": "webhook", "apps": ["support"]}, headers=admin_headers()
        )
        env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("GATEWAY_")}
        env |= {
            "GATEWAY_STORE": f"sqlite:///{tmp_path / 'gateway.db'}",
            "GATEWAY_PUBLIC_URL": gateway,
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "GATEWAY_SECRET_KEY": SECRET_KEY,
        }
        yield Webhook(created.json()["id"], env)


async def test_an_answer_exits_0_and_json_is_the_result_object(webhook: Webhook) -> None:
    human = await webhook.call("--query", "Hello there")
    assert human.exit_code == 0, human.output
    assert human.stdout.startswith("You said: Hello there\n(task ")

    result = await webhook.call("--query", "Hello there", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded"
    assert data["answer"] == "You said: Hello there"
    assert data["task_id"] and data["conversation_id"]


async def test_a_failed_answer_exits_1(webhook: Webhook) -> None:
    human = await webhook.call("--query", "[[fault:400]] Hello")
    assert human.exit_code == 1
    assert human.stdout.startswith("failed: HTTP 502")

    result = await webhook.call("--query", "[[fault:400]] Hello", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["status"] == "failed"
    assert data["error"]["code"]


async def test_stream_is_a_flag_and_json_prints_one_event_per_line(webhook: Webhook) -> None:
    human = await webhook.call("--query", "Tell me a story", "--stream")
    assert human.exit_code == 0, human.output
    assert human.stdout.startswith("You said: Tell me a story\n(")
    assert "text pieces streamed" in human.stdout

    result = await webhook.call("--query", "Tell me a story", "--stream", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "task"
    assert {e["event"] for e in events[1:-1]} <= {"delta", "replace", "ping"}
    assert "".join(e["data"]["text"] for e in events if e["event"] == "delta") == "You said: Tell me a story"
    assert events[-1]["event"] == "done"
    assert events[-1]["data"]["answer"] == "You said: Tell me a story"

    refused = await webhook.call("--query", "Hi", "--stream", "yes")
    assert refused.exit_code == 2  # a flag takes no value: click's usage error


async def test_a_failed_stream_exits_1(webhook: Webhook) -> None:
    result = await webhook.call("--query", "[[fault:error-midstream]] Tell me a story", "--stream", "--json")
    assert result.exit_code == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "error"
    human = await webhook.call("--query", "[[fault:error-midstream]] Tell me a story", "--stream")
    assert human.exit_code == 1
    assert human.stdout.startswith("failed: ")
