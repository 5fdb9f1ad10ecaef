"""Plugin jobs as stored: the plugin's idempotency key is a field of the payload, and jobs stored
before it was (the key only as the tail of the job's store key) still run with their key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway.host.registry import PluginRegistry
from gateway.host.runtime import Gateway
from gateway.jobs.plugin_job import PLUGIN_JOB, PluginJobPayload, plugin_job_key
from gateway.plugin import Context, JobInfo, Permission, Plugin, unverified
from gateway.storage.base import Job
from tests.support.gateway import make_settings, run_job_now, running_app

pytestmark = pytest.mark.anyio


class Empty(BaseModel):
    pass


keyed = Plugin("keyed", settings=Empty, verifier=unverified, permissions={Permission.JOBS})


@keyed.job("note")
async def note(job: JobInfo, ctx: Context) -> dict[str, object]:
    return {"key": job.key, "data": dict(job.payload)}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_app(make_settings(tmp_path), registry=PluginRegistry([keyed]), run_workers=False) as running:
        yield running.gateway


async def test_the_plugins_key_is_a_field_of_the_stored_payload(gateway: Gateway) -> None:
    record, _ = await gateway.endpoints.create("keyed", [], {})
    ctx = await gateway.contexts.build(record, keyed)
    job_id = await ctx.jobs.enqueue("note", {"n": 1}, key="delivery:7")
    assert await ctx.jobs.enqueue("note", {"n": 2}, key="delivery:7") == job_id  # still idempotent
    stored = await gateway.store.job_get(job_id)
    assert stored is not None and stored.kind == PLUGIN_JOB
    assert stored.payload == {"handler": "note", "key": "delivery:7", "data": {"n": 1}}
    assert PluginJobPayload.of(stored) == PluginJobPayload("note", {"n": 1}, "delivery:7")
    done = await run_job_now(gateway, job_id)
    assert done.state == "done" and done.result == {"key": "delivery:7", "data": {"n": 1}}


async def test_a_job_without_a_key_runs_with_none(gateway: Gateway) -> None:
    record, _ = await gateway.endpoints.create("keyed", [], {})
    job_id = await (await gateway.contexts.build(record, keyed)).jobs.enqueue("note", {})
    assert (await run_job_now(gateway, job_id)).result == {"key": None, "data": {}}


@pytest.mark.parametrize(
    ("store_key", "expected"),
    [("delivery:7", "delivery:7"), (None, None)],
)
async def test_a_job_stored_in_the_old_format_still_gets_its_key(
    gateway: Gateway, store_key: str | None, expected: str | None
) -> None:
    """Jobs enqueued before the key was a payload field: {"handler", "data"}, the key only in job.key."""
    record, _ = await gateway.endpoints.create("keyed", [], {})
    now = gateway.clock.time()
    old = Job(
        id="job_old",
        kind=PLUGIN_JOB,
        payload={"handler": "note", "data": {"n": 1}},
        key=None if store_key is None else plugin_job_key(record.id, "note", store_key),
        endpoint_id=record.id,
        due_at=now,
        created_at=now,
        updated_at=now,
    )
    await gateway.store.job_enqueue(old)
    assert (await run_job_now(gateway, "job_old")).result == {"key": expected, "data": {"n": 1}}
