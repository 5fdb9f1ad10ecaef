"""The endpoint service directly: what the CLI reaches without the admin API's validation."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from endpoints.echo import plugin as echo
from gateway.exceptions import BadRequest
from gateway.host.registry import PluginRegistry
from gateway.records.apps import AppIn
from tests.support.gateway import Running, make_settings, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "redis"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    changes = {"store": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    settings = make_settings(tmp_path, **changes)
    async with running_app(settings, registry=PluginRegistry([echo]), run_workers=False) as running:
        yield running


@pytest.mark.parametrize("grace", [math.inf, math.nan, 1e300])
async def test_rotation_refuses_a_grace_it_cannot_store(running: Running, grace: float) -> None:
    record, url = await running.gateway.endpoints.create("echo", [], {})
    with pytest.raises(BadRequest):
        await running.gateway.endpoints.rotate(record.id, grace=grace)
    assert (await running.gateway.endpoints.get(record.id)).tokens == record.tokens
    assert (await running.client.get(running.path(url))).status_code == 200


async def test_concurrent_changes_of_one_endpoint_never_lose_a_rotation(tmp_path: Path) -> None:
    """A rotate racing updates and toggles: every change applies, and the newest URL works."""
    async with running_app(make_settings(tmp_path), registry=PluginRegistry([echo]), run_workers=False) as running:
        gateway = running.gateway
        record, _ = await gateway.endpoints.create("echo", [], {})
        results = await asyncio.gather(
            gateway.endpoints.rotate(record.id, grace=0),
            gateway.endpoints.update(record.id, settings={"greeting": "a"}),
            gateway.endpoints.set_enabled(record.id, True),
            gateway.endpoints.update(record.id, name="renamed"),
        )
        _, newest = results[0]
        final = await gateway.endpoints.get(record.id)
        assert final.name == "renamed" and final.settings["greeting"] == "a"
        assert gateway.endpoints.url(final) == newest
        assert (await running.client.get(running.path(newest))).status_code == 200


async def test_a_burst_of_requests_shares_one_decoded_endpoint_app_and_context(running: Running) -> None:
    """Requests arriving together for one endpoint hold one copy of its records, not one each."""
    gateway = running.gateway
    await gateway.apps.add(AppIn(name="a", base_url="http://dify.test/v1", api_key="app-k", mode="chat"))  # type: ignore[arg-type]
    _, url = await gateway.endpoints.create("echo", ["a"], {})
    token = url.rsplit("/", 1)[-1]
    records = await asyncio.gather(*(gateway.endpoints.resolve(token) for _ in range(20)))
    assert records[0] is not None and all(record is records[0] for record in records)
    apps = await asyncio.gather(*(gateway.apps.cached("a") for _ in range(20)))
    assert apps[0] is not None and all(app is apps[0] for app in apps)
    plugin = gateway.registry.get("echo")
    assert plugin is not None
    contexts = await asyncio.gather(*(gateway.contexts.for_request(records[0], plugin) for _ in range(20)))
    assert all(context is contexts[0] for context in contexts)


async def test_a_disabled_or_deleted_endpoint_is_turned_away_at_once(running: Running) -> None:
    gateway = running.gateway
    record, url = await gateway.endpoints.create("echo", [], {})
    assert (await running.client.get(running.path(url))).status_code == 200
    await gateway.endpoints.set_enabled(record.id, False)
    assert (await running.client.get(running.path(url))).status_code == 404
    await gateway.endpoints.set_enabled(record.id, True)
    assert (await running.client.get(running.path(url))).status_code == 200
    await gateway.endpoints.delete(record.id)
    assert (await running.client.get(running.path(url))).status_code == 404


async def test_jobs_of_one_endpoint_share_its_record_and_stop_at_once_when_it_goes(running: Running) -> None:
    from gateway.plugin import JobError

    gateway = running.gateway
    record, _ = await gateway.endpoints.create("echo", [], {})
    found = await asyncio.gather(*(gateway.endpoints.of_job(record.id, enabled=True) for _ in range(20)))
    assert all(one is found[0][0] for one, _ in found)  # one decoded record for the burst
    plugin = found[0][1]
    contexts = await asyncio.gather(*(gateway.contexts.for_request(found[0][0], plugin) for _ in range(5)))
    assert all(context is contexts[0] for context in contexts)
    await gateway.endpoints.set_enabled(record.id, False)
    with pytest.raises(JobError):
        await gateway.endpoints.of_job(record.id, enabled=True)
    assert (await gateway.endpoints.of_job(record.id, enabled=False))[0].enabled is False
    await gateway.endpoints.delete(record.id)
    with pytest.raises(JobError):
        await gateway.endpoints.of_job(record.id, enabled=False)


async def test_a_url_restored_after_its_delete_opens_at_once(running: Running) -> None:
    """The 404 cached for a deleted URL does not outlive its restore (`apply`, a snapshot) here."""
    gateway = running.gateway
    record, url = await gateway.endpoints.create("echo", [], {})
    await gateway.endpoints.delete(record.id)
    assert (await running.client.get(running.path(url))).status_code == 404  # the miss is cached
    token = url.rsplit("/", 1)[-1]
    await gateway.endpoints.create_with_secrets("echo", [], {}, endpoint_id=record.id, token=token)
    assert (await running.client.get(running.path(url))).status_code == 200
