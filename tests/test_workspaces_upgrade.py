"""Upgrading to workspaces, on SQLite and a real Redis: records written before workspaces existed
(no `workspace` field, apps stored under their bare name) read as the workspace `default`, their
keys still decrypt and their URLs still answer, unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from gateway.clock import FakeClock
from gateway.records.admintokens import AdminTokenIn
from gateway.records.apps import AppIn
from gateway.records.workspaces import WorkspaceIn
from gateway.storage.base import Store
from tests.support.gateway import make_settings, running_app
from tests.support.workspaces import DIFY_A, KEY, OPERATOR, bearer, call, new_clock, open_test_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> FakeClock:
    return new_clock()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    async with open_test_store(request.param, tmp_path, clock, redis_url) as opened:
        yield opened


async def _write_the_old_way(store: Store, collection: str, key: str) -> None:
    """The record as the gateway wrote it before workspaces: the same document without `workspace`."""
    doc = await store.doc_get(collection, key)
    assert doc is not None and doc.pop("workspace") == "default"
    await store.doc_put(collection, key, doc)


async def test_old_records_read_as_the_default_workspace(store: Store, clock: FakeClock, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_app(settings, store=store, clock=clock, run_workers=False) as before:
        gw = before.gateway
        await gw.apps.add(AppIn(name="support", base_url=DIFY_A, api_key=SecretStr(KEY), mode="chat"))
        echo, url = await gw.endpoints.create("echo", ["support"], {}, name="old")
        hook, _ = await gw.endpoints.create("webhook", ["support"], {})
    await _write_the_old_way(store, "apps", "support")
    for endpoint in (echo, hook):
        await _write_the_old_way(store, "endpoints", endpoint.id)

    async with running_app(settings, store=store, clock=clock, run_workers=False) as after:
        gw = after.gateway
        app = await gw.apps.get("support")
        assert app.workspace == "default" and gw.apps.api_key(app) == KEY
        record = await gw.endpoints.get(echo.id, workspace="default")
        assert record.workspace == "default"
        # The URL is the one handed out before, and it still answers.
        shown = (await call(after, "GET", f"/endpoints/{echo.id}", OPERATOR)).json()
        assert shown["url"] == url and shown["workspace"] == "default"
        assert (await after.client.post(after.path(url), json={"hi": 1})).status_code == 200
        # The endpoint finds its app in `default`.
        context = await gw.contexts.build(await gw.endpoints.get(hook.id), gw.registry.require("webhook"))
        assert context.apps.get("support").base_url == DIFY_A
        # A token of `default` sees the old records; another workspace's doesn't.
        await gw.workspaces.create(WorkspaceIn(name="team-a"))
        _, mine = await gw.admin_tokens.create(AdminTokenIn(workspace="default"))
        _, theirs = await gw.admin_tokens.create(AdminTokenIn(workspace="team-a"))
        assert [a["name"] for a in (await call(after, "GET", "/apps", bearer(mine))).json()["apps"]] == ["support"]
        assert (await call(after, "GET", "/apps/support", bearer(theirs))).status_code == 404
        assert (await call(after, "GET", f"/endpoints/{echo.id}", bearer(theirs))).status_code == 404
        # team-a may have its own `support` beside the old one.
        await gw.apps.add(
            AppIn(name="support", base_url=DIFY_A, api_key=SecretStr("app-other"), mode="chat"), workspace="team-a"
        )
        assert gw.apps.api_key(await gw.apps.get("support")) == KEY
        assert gw.apps.api_key(await gw.apps.get("support", workspace="team-a")) == "app-other"
        # Changing an old record keeps it where it was.
        await gw.endpoints.update(echo.id, name="renamed")
        assert (await gw.endpoints.get(echo.id, workspace="default")).name == "renamed"
