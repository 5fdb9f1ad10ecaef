"""`dify-gateway usage` / `budgets` and the admin API's /usage and /budgets: shapes and refusals."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from endpoints.webhook import plugin as webhook
from gateway.cli.main import cli
from gateway.exceptions import BudgetExceeded, UpstreamError
from gateway.host.runtime import open_gateway
from gateway.http.errors import error_response
from gateway.records.apps import AppIn
from gateway.records.workspaces import WorkspaceIn
from gateway.settings import Settings, bootstrap
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.usage import UsageRecord
from gateway.usage.counters import day_of
from tests.support.gateway import admin_headers, live_server, make_settings, running_app

pytestmark = pytest.mark.anyio


def record(key: str, app: str, tokens: int, price: str, currency: str = "USD") -> UsageRecord:
    return UsageRecord(
        key=key,
        workspace="default",
        endpoint="ep_1",
        app=app,
        plugin="webhook",
        user="u1",
        outcome="ok",
        time=time.time(),
        prompt_tokens=tokens,
        total_tokens=tokens,
        total_price=price,
        currency=currency,
    )


def cli_env(tmp_path: Path) -> dict[str, str | None]:
    cleared: dict[str, str | None] = {name: None for name in os.environ if name.startswith("GATEWAY_")}
    return {**cleared, "GATEWAY_STORE": f"sqlite:///{tmp_path / 'gw.db'}"}


def test_cli_usage_and_budgets(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    runner = CliRunner()

    async def seed() -> None:
        gw = await open_gateway(bootstrap(Settings(store=str(env["GATEWAY_STORE"]))).settings)
        try:
            await gw.usage.recorder.record(record("m1", "support", 120, "0.5"))
            await gw.usage.recorder.record(record("m2", "sales", 30, "2", "EUR"))
        finally:
            await gw.aclose()

    asyncio.run(seed())
    shown = runner.invoke(cli, ["usage", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert [(r["app"], r["total_tokens"], r["cost"]) for r in report["rows"]] == [
        ("sales", 30, {"EUR": "2"}),
        ("support", 120, {"USD": "0.5"}),
    ]
    today = day_of(time.time()).isoformat()
    table = runner.invoke(cli, ["usage", "--by", "day", "--from", today, "--to", today], env=env)
    assert table.exit_code == 0 and today in table.output and "2 EUR, 0.5 USD" in table.output
    bad = runner.invoke(cli, ["usage", "--from", "yesterday"], env=env)
    assert bad.exit_code == 1 and "--from must be a date as YYYY-MM-DD" in bad.output
    assert runner.invoke(cli, ["usage", "--by", "plugin"], env=env).exit_code == 2  # click's own refusal

    made = runner.invoke(cli, ["budgets", "set", "--app", "support", "--tokens", "1000", "--json"], env=env)
    assert made.exit_code == 0, made.output
    budget = json.loads(made.output)
    assert budget["scope"] == "app" and budget["target"] == "support" and budget["tokens"] == 1000
    cost = runner.invoke(cli, ["budgets", "set", "--cost", "12.5", "--currency", "eur"], env=env)
    assert cost.exit_code == 0 and cost.output.startswith("budget bud_")
    listed = runner.invoke(cli, ["budgets", "list"], env=env)
    assert "1000 tokens" in listed.output and "12.5 eur" in listed.output
    refused = runner.invoke(cli, ["budgets", "set", "--app", "a", "--tokens", "5", "--cost", "1"], env=env)
    assert refused.exit_code == 1 and "exactly one of tokens or cost" in refused.output
    assert runner.invoke(cli, ["budgets", "set", "--cost", "lots"], env=env).exit_code == 1
    assert runner.invoke(cli, ["budgets", "delete", budget["id"]], env=env).exit_code == 0
    gone = runner.invoke(cli, ["budgets", "delete", budget["id"]], env=env)
    assert gone.exit_code == 1 and "no budget" in gone.output


async def test_admin_usage_and_budgets(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as running:
        client, headers = running.client, admin_headers()
        await running.gateway.usage.recorder.record(record("m1", "support", 120, "0.5"))
        report = (await client.get("/admin/api/usage", params={"by": "user"}, headers=headers)).json()
        assert report["rows"][0]["user"] == "u1" and report["total"]["cost"] == {"USD": "0.5"}
        for query, fragment in [
            ({"by": "nothing"}, "by must be one of"),
            ({"from": "2026-13-01"}, "from must be a date"),
            ({"to": "2026-12-01", "from": "2026-12-02"}, "must not be after"),
            ({"from": "2020-01-01", "to": "2026-01-01"}, "366"),
        ]:
            refused = await client.get("/admin/api/usage", params=query, headers=headers)
            assert refused.status_code == 400 and fragment in refused.json()["error"]["message"], query
        assert (await client.get("/admin/api/usage")).status_code == 401

        await running.gateway.workspaces.create(WorkspaceIn(name="team-a"))
        put: dict[str, Any] = {"scope": "workspace", "cost": "10", "currency": "USD"}
        made = await client.put("/admin/api/budgets", json=put, headers=headers, params={"workspace": "team-a"})
        assert made.status_code == 200 and made.json()["cost"] == "10"
        for body in [
            {"scope": "app", "tokens": 5},  # no target
            {"scope": "workspace", "tokens": 5, "cost": "1"},
            {"scope": "workspace", "tokens": -1},
            {"scope": "workspace", "tokens": 5, "warn_at": 1.5},
            {"scope": "team", "tokens": 5},
            {"scope": "workspace", "tokens": 5, "workspace": "team-b"},  # the workspace is the caller's
        ]:
            refused = await client.put("/admin/api/budgets", json=body, headers=headers, params={"workspace": "team-a"})
            assert refused.status_code == 422, body
        team_a = {"workspace": "team-a"}
        listed = (await client.get("/admin/api/budgets", params=team_a, headers=headers)).json()
        assert [b["id"] for b in listed["budgets"]] == [made.json()["id"]]
        assert (await client.get("/admin/api/budgets", headers=headers)).json() == {"budgets": []}  # default's
        elsewhere = await client.delete(f"/admin/api/budgets/{made.json()['id']}", headers=headers)
        assert elsewhere.status_code == 404  # acting on "default": team-a's budget is not found there
        deleted = await client.delete(f"/admin/api/budgets/{made.json()['id']}", headers=headers, params=team_a)
        assert deleted.json() == {"deleted": made.json()["id"]}
        missing = await client.delete(f"/admin/api/budgets/{made.json()['id']}", headers=headers, params=team_a)
        assert missing.status_code == 404


def test_budget_exceeded_maps_to_429_in_the_one_place() -> None:
    response = error_response(
        BudgetExceeded(
            "the monthly budget is spent", budget="bud_1", scope="workspace", period="2026-12", resets_at=1.5
        )
    )
    assert response.status_code == 429 and "retry-after" not in response.headers
    assert json.loads(bytes(response.body)) == {
        "error": {
            "code": "budget_exceeded",
            "message": "the monthly budget is spent",
            "budget": "bud_1",
            "period": "2026-12",
            "resets_at": 1.5,
        }
    }


async def test_every_way_an_answer_ends_is_recorded(tmp_path: Path) -> None:
    config = SimulatorConfig(first_token_latency=0, tokens_per_second=40)
    async with live_server(create_simulator_app(config)) as simulator, running_app(make_settings(tmp_path)) as running:
        gw = running.gateway
        await gw.apps.add(AppIn(name="a", base_url=f"{simulator}/v1", api_key=SecretStr("app-simulator"), mode="chat"))
        record, _ = await gw.endpoints.create("webhook", ["a"], {})
        ctx = await gw.contexts.build(record, webhook)
        answer = await ctx.apps.ask("a whole answer please", user="u1")
        async with ctx.apps.stream("one two three four five six seven", user="u2", conversation_key="k") as stream:
            async for delta in stream.deltas():
                if delta.kind == "text":
                    break  # the reader leaves early: the answer is stopped
        with pytest.raises(UpstreamError):
            async with ctx.apps.stream("fail [[fault:400]]", user="u3"):
                pass
        report = await gw.usage.report.query(by="user")
        outcomes = {r["user"]: (r["ok"], r["cancelled"], r["error"]) for r in report["rows"]}
        assert outcomes == {"u1": (1, 0, 0), "u2": (0, 1, 0), "u3": (0, 0, 1)}
        assert answer.usage is not None and report["rows"][0]["total_tokens"] == answer.usage.total_tokens


def test_cli_refuses_a_workspace_that_does_not_exist(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    runner = CliRunner()
    unknown = runner.invoke(cli, ["budgets", "set", "--workspace", "nope", "--tokens", "5"], env=env)
    assert unknown.exit_code == 1 and "nope" in unknown.output
    assert runner.invoke(cli, ["usage", "--workspace", "nope"], env=env).exit_code == 1
