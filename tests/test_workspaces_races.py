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
from gateway.records.apps import AppIn
from gateway.records.workspaces import WorkspaceIn
from gateway.storage.base import Store
from tests.support.gateway import make_settings, running_app
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
        deleting = asyncio.create_task(
            delete_workspace(
                "team-a", workspaces=gw.workspaces, apps=gw.apps, endpoints=gw.endpoints, tokens=gw.admin_tokens
            )
        )
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
