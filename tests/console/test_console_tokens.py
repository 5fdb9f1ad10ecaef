"""Console sessions of workspace tokens, in-process over httpx: who a session acts as, a viewer's
session reads only, and a revoked or expired token's session is dead at its next request."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from gateway.admin.auth import MAX_FAILURES_PER_MINUTE
from gateway.records.admintokens import AdminTokenIn
from gateway.records.apps import AppIn
from gateway.records.workspaces import WorkspaceIn
from gateway.testing.clock import VirtualClock
from tests.support.gateway import ADMIN_TOKEN, Running, admin_headers, make_settings, running_app

pytestmark = pytest.mark.anyio

KEY = "app-" + "K" * 28
APP = {"name": "sales", "base_url": "https://dify.test/v1", "api_key": KEY, "mode": "chat"}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    clock = VirtualClock()
    async with running_app(
        make_settings(tmp_path, private_upstreams=("dify.test",)), run_workers=False, clock=clock
    ) as running:
        gw = running.gateway
        await gw.workspaces.create(WorkspaceIn(name="team-a"))
        await gw.apps.add(AppIn(name="support", base_url=APP["base_url"], api_key=SecretStr(KEY), mode="chat"))
        await gw.apps.add(
            AppIn(name="a-only", base_url=APP["base_url"], api_key=SecretStr(KEY), mode="chat"), workspace="team-a"
        )
        yield running


async def token(running: Running, role: str = "admin", expires: float | None = None) -> tuple[str, str]:
    """A team-a token: (its id, the token)."""
    spec = AdminTokenIn(workspace="team-a", role=role, expires_in_seconds=expires)  # type: ignore[arg-type]
    record, value = await running.gateway.admin_tokens.create(spec)
    return record.id, value


async def log_in(running: Running, value: str) -> str:
    answered = await running.client.post("/console/login", json={"token": value})
    assert answered.status_code == 200, answered.text
    assert value not in answered.text and value not in answered.headers["set-cookie"]
    csrf: str = answered.json()["csrf_token"]
    return csrf


def session_key(cookie: str) -> str:
    return "console:session:" + hashlib.sha256(cookie.encode()).hexdigest()


def same_origin(csrf: str) -> dict[str, str]:
    return {"x-csrf-token": csrf, "origin": "http://gw.test", "sec-fetch-site": "same-origin"}


async def test_a_workspace_token_logs_in_and_its_session_acts_as_that_token(running: Running) -> None:
    token_id, value = await token(running)
    csrf = await log_in(running, value)
    client = running.client
    session = (await client.get("/console/session")).json()
    assert session["who"] == {"role": "admin", "workspace": "team-a", "token_id": token_id, "operator": False}
    assert [a["name"] for a in (await client.get("/admin/api/apps")).json()["apps"]] == ["a-only"]
    assert (await client.get("/admin/api/apps?workspace=default")).status_code == 404
    assert (await client.get("/admin/api/workspaces")).status_code == 403  # the operator's screen
    added = await client.post("/admin/api/apps", json=APP, headers=same_origin(csrf))
    assert added.status_code == 201, added.text
    assert await running.gateway.apps.get("sales", workspace="team-a")
    whoami = (await client.get("/admin/api/whoami")).json()
    assert whoami == {"role": "admin", "workspace": "team-a", "token_id": token_id}


async def test_the_operators_session_says_so_and_picks_any_workspace(running: Running) -> None:
    await log_in(running, ADMIN_TOKEN)
    session = (await running.client.get("/console/session")).json()
    assert session["who"] == {"role": "operator", "workspace": None, "token_id": None, "operator": True}
    listed = (await running.client.get("/admin/api/apps?workspace=team-a")).json()["apps"]
    assert [a["name"] for a in listed] == ["a-only"]


async def test_a_viewer_session_reads_but_changes_nothing(running: Running) -> None:
    _, value = await token(running, "viewer")
    csrf = await log_in(running, value)
    assert (await running.client.get("/console/session")).json()["who"]["role"] == "viewer"
    assert (await running.client.get("/admin/api/apps")).status_code == 200
    refused = await running.client.post("/admin/api/apps", json=APP, headers=same_origin(csrf))
    assert refused.status_code == 403 and "viewer" in refused.json()["error"]["message"]
    assert (await running.client.delete("/admin/api/apps/a-only", headers=same_origin(csrf))).status_code == 403


async def test_a_revoked_tokens_session_dies_at_once(running: Running) -> None:
    token_id, value = await token(running)
    csrf = await log_in(running, value)
    client = running.client
    cookie = client.cookies["gw_console"]
    assert (await client.get("/admin/api/apps")).status_code == 200
    revoked = await client.delete(f"/admin/api/tokens/{token_id}", headers=admin_headers())
    assert revoked.status_code == 200, revoked.text
    assert (await client.get("/admin/api/apps")).status_code == 401
    assert (await client.post("/admin/api/apps", json=APP, headers=same_origin(csrf))).status_code == 401
    assert (await client.get("/console/session")).status_code == 401
    # Ended on the server, not just refused: the store no longer holds the session.
    client.cookies.clear()
    assert (await client.get("/console/session", headers={"cookie": f"gw_console={cookie}"})).status_code == 401
    assert await running.gateway.store.kv_get(session_key(cookie)) is None


async def test_an_expired_tokens_session_dies_when_the_token_does(running: Running) -> None:
    _, value = await token(running, expires=300)
    await log_in(running, value)
    assert (await running.client.get("/admin/api/apps")).status_code == 200
    clock = running.gateway.clock
    assert isinstance(clock, VirtualClock)
    clock.advance(301)  # the session itself would last hours more
    assert (await running.client.get("/admin/api/apps")).status_code == 401
    assert (await running.client.get("/console/session")).status_code == 401


async def test_a_revoked_or_unknown_token_cant_log_in_and_counts_as_a_failure(running: Running) -> None:
    token_id, value = await token(running)
    await running.gateway.admin_tokens.revoke(token_id)
    refused = await running.client.post("/console/login", json={"token": value})
    assert refused.status_code == 401
    assert value not in refused.text
    for _ in range(MAX_FAILURES_PER_MINUTE - 1):
        assert (await running.client.post("/console/login", json={"token": value})).status_code == 401
    assert (await running.client.post("/console/login", json={"token": ADMIN_TOKEN})).status_code == 429


async def test_the_store_keeps_the_tokens_id_never_the_token(running: Running) -> None:
    token_id, value = await token(running)
    await log_in(running, value)
    stored = await running.gateway.store.kv_get(session_key(running.client.cookies["gw_console"]))
    assert stored is not None and token_id in stored and value not in stored


async def test_deleting_the_workspace_ends_its_tokens_sessions(running: Running) -> None:
    _, value = await token(running)
    await log_in(running, value)
    assert (await running.client.get("/admin/api/apps")).status_code == 200
    operator = admin_headers()
    assert (await running.client.delete("/admin/api/apps/a-only?workspace=team-a", headers=operator)).status_code == 200
    assert (await running.client.delete("/admin/api/workspaces/team-a", headers=operator)).status_code == 200
    assert (await running.client.get("/admin/api/apps")).status_code == 401
    assert (await running.client.get("/console/session")).status_code == 401
