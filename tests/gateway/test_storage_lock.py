"""`ctx.storage.lock(name, ttl)`: a lock across replicas, scoped to its endpoint, released only by its holder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway.host.registry import PluginRegistry
from gateway.plugin import Context, LockBusy, Permission, Plugin, Request, Response, unverified
from tests.support.gateway import Running, make_settings, running_app

pytestmark = pytest.mark.anyio


class Empty(BaseModel):
    pass


syncer = Plugin("syncer", settings=Empty, verifier=unverified, permissions={Permission.STORAGE})
inside = asyncio.Event()
release = asyncio.Event()


@syncer.route("/sync", methods=["POST"])
async def sync(request: Request, ctx: Context) -> Response:
    async with ctx.storage.lock("sync", ttl=30, wait=0) as lock:
        await ctx.storage.delete("sync")  # the plugin's own keys are apart from its locks
        if ("hold", "1") in request.query:
            inside.set()
            await release.wait()
        return Response.json({"lost": lock.lost})


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    inside.clear()
    release.clear()
    registry = PluginRegistry([syncer])
    async with running_app(make_settings(tmp_path), registry=registry, run_workers=False) as r:
        yield r


async def mint(running: Running) -> str:
    _, url = await running.gateway.endpoints.create("syncer", [], {})
    return running.path(url)


async def test_one_holder_at_a_time_the_others_get_409(running: Running) -> None:
    path, other_endpoint = await mint(running), await mint(running)
    holder = asyncio.create_task(running.client.post(f"{path}/sync?hold=1"))
    await asyncio.wait({holder, asyncio.ensure_future(inside.wait())}, return_when=asyncio.FIRST_COMPLETED)
    assert inside.is_set(), holder.result().text
    busy = await running.client.post(f"{path}/sync")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "conflict"
    # Scoped to the endpoint: another endpoint of the same plugin has a lock of its own.
    assert (await running.client.post(f"{other_endpoint}/sync")).json() == {"lost": False}
    release.set()
    assert (await holder).json() == {"lost": False}
    assert (await running.client.post(f"{path}/sync")).status_code == 200  # released when the block ended


async def test_the_lock_is_released_only_by_its_holder(running: Running) -> None:
    record, _ = await running.gateway.endpoints.create("syncer", [], {})
    ctx = await running.gateway.context(record, syncer)
    store = running.gateway.store
    async with ctx.storage.lock("job", ttl=30) as lock:
        key = f"lock:{record.id}:job"
        assert await store.kv_get(key) is not None
        # Someone else's release (another replica's stale handle) leaves it held.
        assert not await store.kv_delete_if_equals(key, "someone-else")
        with pytest.raises(LockBusy):
            async with ctx.storage.lock("job", ttl=30, wait=0):
                pytest.fail("taken twice")
        assert not lock.lost
    assert await store.kv_get(key) is None


async def test_bad_arguments_are_refused(running: Running) -> None:
    record, _ = await running.gateway.endpoints.create("syncer", [], {})
    ctx = await running.gateway.context(record, syncer)
    with pytest.raises(ValueError):
        async with ctx.storage.lock("x", ttl=0):
            pass
