"""Deleting a workspace while something is created in it, on SQLite and a real Redis: what is
created either lands before the delete (which then refuses) or is refused (404), never left
behind in a workspace that no longer exists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gateway.admin.usecases import delete_workspace
from gateway.clock import FakeClock
from gateway.exceptions import NotFound
from gateway.host.runtime import Gateway
from gateway.records.admintokens import AdminTokenIn
from gateway.records.apps import AppIn
from gateway.records.workspaces import WorkspaceIn
from gateway.storage.base import Store
from gateway.usage.budgets import BudgetIn
from tests.support.gateway import admin_headers, make_settings, running_app
from tests.support.workspaces import new_clock, open_test_store

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    async with open_test_store(request.param, tmp_path, FakeClock(0.0), redis_url) as opened:
        yield opened


async def _create_endpoint(gw: Gateway) -> None:
    await gw.endpoints.create("echo", [], {}, workspace="team-a")


async def _add_app(gw: Gateway) -> None:
    app = AppIn(name="support", base_url="https://dify.test/v1", api_key=SecretStr("app-" + "K" * 28), mode="chat")
    await gw.apps.add(app, workspace="team-a")


@pytest.mark.parametrize(("collection", "create"), [("endpoints", _create_endpoint), ("apps", _add_app)])
async def test_nothing_is_created_in_a_workspace_being_deleted(
    store: Store, tmp_path: Path, collection: str, create: Callable[[Gateway], Coroutine[Any, Any, None]]
) -> None:
    clock = new_clock()
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        gw: Gateway = running.gateway
        await gw.workspaces.create(WorkspaceIn(name="team-a"))
        listed, resume = asyncio.Event(), asyncio.Event()
        real, paused = store.doc_list, collection

        async def paused_after_listing(collection: str, *args: Any, **kwargs: Any) -> Any:
            found = await real(collection, *args, **kwargs)
            if collection == paused and not resume.is_set():
                listed.set()  # the delete has seen that team-a holds none of these ...
                await resume.wait()  # ... and is held here while one is created
            return found

        store.doc_list = paused_after_listing  # type: ignore[method-assign]
        deleting = asyncio.create_task(delete_workspace(gw, "team-a"))
        await listed.wait()
        creating = asyncio.create_task(create(gw))
        for _ in range(50):  # let the create go as far as it can while the delete is held
            await asyncio.sleep(0)
        resume.set()
        await deleting
        with pytest.raises(NotFound, match="no workspace named 'team-a'"):
            await creating
        assert not await gw.workspaces.exists("team-a")
        assert await gw.endpoints.all("team-a") == [] and await gw.apps.all("team-a") == []


@pytest.mark.parametrize(
    ("written", "path", "body", "kept"),
    [
        ("admin_tokens", "/tokens", {"workspace": "team-a"}, "tokens"),
        ("budgets", "/budgets", {"scope": "workspace", "tokens": 5}, "budgets"),
    ],
)
async def test_no_token_or_budget_is_made_for_a_workspace_being_deleted(
    store: Store, tmp_path: Path, written: str, path: str, body: dict[str, Any], kept: str
) -> None:
    """A request that found the workspace still there, then stalled until the delete was done,
    must not leave a token or a budget behind: it holds the workspace's lock as the delete does."""
    async with running_app(make_settings(tmp_path), store=store, clock=new_clock(), run_workers=False) as running:
        gw: Gateway = running.gateway
        await gw.workspaces.create(WorkspaceIn(name="team-a"))
        token = (await gw.admin_tokens.create(AdminTokenIn(workspace="team-a")))[1]
        listed, reached, resume, deleted = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()
        real_list, real_create, real_put, real_lock = (
            store.doc_list,
            store.doc_create,
            store.doc_put,
            store.kv_set_if_absent,
        )

        async def paused_after_listing(collection: str, *args: Any, **kwargs: Any) -> Any:
            found = await real_list(collection, *args, **kwargs)
            if collection == "endpoints" and not resume.is_set():
                listed.set()  # the delete has seen an empty workspace ...
                await resume.wait()  # ... and is held here
            return found

        async def stalled(real: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            if name == written and listed.is_set():
                reached.set()
                await deleted.wait()  # a write that lands after the whole delete
            return await real(name, *args, **kwargs)

        async def contended(key: str, *args: Any, **kwargs: Any) -> bool:
            got: bool = await real_lock(key, *args, **kwargs)
            if key.endswith("wslock:team-a") and not got:
                reached.set()  # the request waits for the workspace the delete holds
            return got

        store.doc_list = paused_after_listing  # type: ignore[method-assign]
        store.doc_create = lambda *a, **k: stalled(real_create, *a, **k)  # type: ignore[method-assign]
        store.doc_put = lambda *a, **k: stalled(real_put, *a, **k)  # type: ignore[method-assign]
        store.kv_set_if_absent = contended  # type: ignore[method-assign]
        deleting = asyncio.create_task(delete_workspace(gw, "team-a"))
        await listed.wait()
        # the budget is set by the workspace's own admin (authenticated before the delete began)
        headers = admin_headers() if kept == "tokens" else {"Authorization": f"Bearer {token}"}
        method = "POST" if kept == "tokens" else "PUT"
        creating = asyncio.create_task(running.client.request(method, "/admin/api" + path, json=body, headers=headers))
        await reached.wait()  # the request got past its checks: at the write, or waiting for the lock
        resume.set()
        await deleting
        deleted.set()
        response = await creating
        assert response.status_code == 404, response.text
        assert response.json()["error"]["message"] == "no workspace named 'team-a'"
        assert await gw.admin_tokens.all("team-a") == [] and await gw.usage.budgets.all("team-a") == []


async def test_a_deleted_workspaces_budgets_go_with_it(store: Store, tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), store=store, clock=new_clock(), run_workers=False) as running:
        gw: Gateway = running.gateway
        await gw.workspaces.create(WorkspaceIn(name="team-a"))
        await gw.usage.budgets.set(BudgetIn(workspace="team-a", scope="workspace", tokens=5))
        await gw.usage.budgets.set(BudgetIn(workspace="team-a", scope="app", target="support", tokens=9))
        kept = await gw.usage.budgets.set(BudgetIn(workspace="default", scope="workspace", tokens=7))
        deleted = await running.client.delete("/admin/api/workspaces/team-a", headers=admin_headers())
        assert deleted.status_code == 200, deleted.text
        assert await gw.usage.budgets.all("team-a") == []
        assert await gw.usage.budgets.all() == [kept]  # another workspace's stay
        # A new team of the same name starts without the old team's limits.
        await gw.workspaces.create(WorkspaceIn(name="team-a"))
        assert await gw.usage.budgets.all("team-a") == []
