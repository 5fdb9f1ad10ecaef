"""`dify-gateway workspaces ...`, `tokens ...` and `--workspace` on the apps and endpoints commands,
on SQLite and a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from gateway.cli.main import cli
from gateway.host.runtime import open_gateway
from gateway.http.app import create_app
from gateway.settings import Settings, bootstrap
from gateway.storage.base import Job
from tests.support.gateway import ADMIN_TOKEN

KEY = "app-" + "K" * 28
DIFY_A = "https://dify-a.test/v1"
DIFY_B = "https://dify-b.test/v1"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str | None]:
    cleared: dict[str, str | None] = {name: None for name in os.environ if name.startswith("GATEWAY_")}
    store = f"sqlite:///{tmp_path / 'gw.db'}" if request.param == "sqlite" else request.getfixturevalue("redis_db")
    return {
        **cleared,
        "GATEWAY_STORE": store,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_SECRET_KEY": "secret-" + "k" * 48,
        "GATEWAY_USE_AIOHTTP": "false",
    }


class Cli:
    def __init__(self, env: dict[str, str | None]) -> None:
        self.env = env
        try:
            self.runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
        except TypeError:
            self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        result = self.runner.invoke(cli, list(args), env=self.env)
        assert "Traceback" not in result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        result = self(*args)
        assert result.exit_code == 1, result.output
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith("error: ")
        return message


@pytest.fixture
def run(env: dict[str, str | None]) -> Cli:
    return Cli(env)


def admin_get(env: dict[str, str | None], token: str, path: str) -> httpx.Response:
    """GET an admin path of a gateway over the CLI's store, with `token`."""
    settings = bootstrap(Settings.from_env({k: v for k, v in env.items() if v is not None})).settings

    async def main() -> httpx.Response:
        from asgi_lifespan import LifespanManager

        app = create_app(settings, run_workers=False)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
                return await client.get("/admin/api" + path, headers={"authorization": f"Bearer {token}"})

    return asyncio.run(main())


def test_workspaces_create_list_delete(run: Cli) -> None:
    assert "created workspace team-a" in run.ok("workspaces", "create", "team-a").stdout
    assert "already exists" in run.fails("workspaces", "create", "team-a")
    assert "name" in run.fails("workspaces", "create", "Team A")
    run.ok("apps", "add", "support", "--base-url", DIFY_A, "--key", KEY, "--mode", "chat", "--workspace", "team-a")
    listed = run.json("workspaces", "list")
    assert [(w["name"], w["apps"], w["endpoints"]) for w in listed] == [("default", 0, 0), ("team-a", 1, 0)]
    assert "NAME" in run.ok("workspaces", "list").stdout
    # Not while it holds an app; then yes, and its tokens go with it.
    assert "still holds apps support" in run.fails("workspaces", "delete", "team-a", "--yes")
    run.ok("apps", "remove", "support", "--workspace", "team-a")
    run.ok("tokens", "create", "--workspace", "team-a")
    run.ok("workspaces", "delete", "team-a", "--yes")
    assert [w["name"] for w in run.json("workspaces", "list")] == ["default"]
    assert run.json("tokens", "list") == []
    assert "can't be deleted" in run.fails("workspaces", "delete", "default", "--yes")
    assert "no workspace" in run.fails("workspaces", "delete", "nope", "--yes")


def test_tokens_create_list_revoke(run: Cli, env: dict[str, str | None]) -> None:
    run.ok("workspaces", "create", "team-a")
    created = run.ok("tokens", "create", "--workspace", "team-a", "--role", "viewer", "--expires", "30d")
    token, note = created.stdout.strip().splitlines()
    assert token.startswith("gwt_at_") and "shown once" in note and "viewer of workspace team-a" in note
    listed = run.json("tokens", "list", "--workspace", "team-a")
    assert len(listed) == 1 and listed[0]["state"] == "active" and listed[0]["expires_at"].endswith("Z")
    assert token not in run.ok("tokens", "list").stdout
    token_id = listed[0]["id"]
    assert token_id in note

    assert admin_get(env, token, "/whoami").json()["workspace"] == "team-a"
    assert f"revoked {token_id}" in run.ok("tokens", "revoke", token_id).stdout
    assert admin_get(env, token, "/whoami").status_code == 401
    assert run.json("tokens", "list")[0]["state"] == "revoked"

    assert "no workspace" in run.fails("tokens", "create", "--workspace", "nope")
    assert "duration" in run.fails("tokens", "create", "--workspace", "team-a", "--expires", "soon")
    assert "no admin token" in run.fails("tokens", "revoke", "at_missing")


def test_apps_and_endpoints_take_a_workspace(run: Cli) -> None:
    run.ok("workspaces", "create", "team-a")
    for workspace, base in (("default", DIFY_B), ("team-a", DIFY_A)):
        run.ok("apps", "add", "support", "--base-url", base, "--key", KEY, "--mode", "chat", "--workspace", workspace)
    assert run.json("apps", "show", "support", "--workspace", "team-a")["base_url"] == DIFY_A
    assert run.json("apps", "show", "support")["base_url"] == DIFY_B  # default
    assert [a["workspace"] for a in run.json("apps", "list", "--workspace", "team-a")] == ["team-a"]
    run.ok("apps", "update", "support", "--base-url", DIFY_B, "--key", KEY, "--mode", "chat", "--workspace", "team-a")
    assert run.json("apps", "show", "support", "--workspace", "team-a")["base_url"] == DIFY_B
    assert "no workspace" in run.fails("apps", "list", "--workspace", "nope")

    created = run.json("endpoints", "create", "--plugin", "echo", "--workspace", "team-a")
    assert created["workspace"] == "team-a"
    assert [e["id"] for e in run.json("endpoints", "list", "--workspace", "team-a")] == [created["id"]]
    assert run.json("endpoints", "list") == []
    # Ids are unique across workspaces: without --workspace any is found; with one, only its own.
    assert run.json("endpoints", "show", created["id"])["id"] == created["id"]
    assert "no endpoint" in run.fails("endpoints", "show", created["id"], "--workspace", "default")
    assert "no endpoint" in run.fails("endpoints", "disable", created["id"], "--workspace", "default")
    run.ok("endpoints", "disable", created["id"], "--workspace", "team-a")
    assert "no endpoint" in run.fails("endpoints", "delete", created["id"], "--yes", "--workspace", "default")
    run.ok("endpoints", "delete", created["id"], "--yes", "--workspace", "team-a")
    run.ok("apps", "remove", "support", "--workspace", "team-a")
    assert run.json("apps", "show", "support")["workspace"] == "default"  # the other team's is untouched


def _dead_jobs(env: dict[str, str | None], endpoints: dict[str, str]) -> None:
    """A dead job `job_<name>` of each endpoint in `endpoints` (name -> endpoint id)."""
    settings = bootstrap(Settings.from_env({k: v for k, v in env.items() if v is not None})).settings

    async def main() -> None:
        gw = await open_gateway(settings)
        try:
            for name, endpoint_id in endpoints.items():
                await gw.store.job_enqueue(Job(id=f"job_{name}", kind="plugin", payload={}, endpoint_id=endpoint_id))
                await gw.store.job_dead(f"job_{name}", None, "failed for the test")
        finally:
            await gw.aclose()

    asyncio.run(main())


def test_jobs_take_a_workspace(run: Cli, env: dict[str, str | None]) -> None:
    run.ok("workspaces", "create", "team-a")
    mine = run.json("endpoints", "create", "--plugin", "echo", "--workspace", "team-a")["id"]
    theirs = run.json("endpoints", "create", "--plugin", "echo")["id"]
    _dead_jobs(env, {"mine": mine, "theirs": theirs})

    assert {j["id"] for j in run.json("jobs", "list")} == {"job_mine", "job_theirs"}  # the operator's: every one
    assert [j["id"] for j in run.json("jobs", "list", "--workspace", "team-a")] == ["job_mine"]
    assert [j["id"] for j in run.json("jobs", "list", "--workspace", "default", "--state", "dead")] == ["job_theirs"]
    assert "no workspace" in run.fails("jobs", "list", "--workspace", "nope")

    assert run.json("jobs", "show", "job_mine", "--workspace", "team-a")["endpoint_id"] == mine
    assert "no such job" in run.fails("jobs", "show", "job_theirs", "--workspace", "team-a")
    assert "no such job" in run.fails("jobs", "replay", "job_theirs", "--workspace", "team-a")
    assert run.json("jobs", "show", "job_theirs")["state"] == "dead"  # untouched
    assert "queued again" in run.ok("jobs", "replay", "job_mine", "--workspace", "team-a").stdout
