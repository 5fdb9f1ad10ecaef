"""Redis only: concurrent enqueues, and concurrent job outcomes, share one round trip (group commit)."""

from __future__ import annotations

import time
import uuid

import anyio
import pytest
import redis.asyncio

from gateway.clock import FakeClock
from gateway.storage.base import Job
from gateway.storage.redis import RedisStore
from tests.support.redis_server import running_redis_server

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def script_calls(client: redis.asyncio.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_concurrent_enqueues_share_one_script_call(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, clock=FakeClock(time.time()), prefix=f"test-{uuid.uuid4().hex}:")
    probe = redis.asyncio.Redis.from_url(redis_url)
    try:
        await store.ping()
        before = await script_calls(probe)
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(store.job_enqueue, Job(id=f"j{i}", kind="test", payload={"i": i}, key=f"k{i}"))
        # 20 jobs, queued in the same event-loop turn: one batch (plus at most a script load).
        assert await script_calls(probe) - before <= 2
        assert len(await store.job_list()) == 20
    finally:
        await probe.aclose()
        await store.aclose()


async def test_a_batch_is_claimed_in_one_script_call_and_concurrent_outcomes_share_one(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, clock=FakeClock(time.time()), prefix=f"test-{uuid.uuid4().hex}:")
    probe = redis.asyncio.Redis.from_url(redis_url)
    try:
        for i in range(12):
            await store.job_enqueue(Job(id=f"j{i:02}", kind="test", payload={"i": i}, due_at=1.0))
        before = await script_calls(probe)
        claimed = await store.job_claim_many("w", 10.0, 30, limit=12)
        assert len(claimed) == 12
        assert await script_calls(probe) - before <= 2  # one call (plus at most a script load)

        before = await script_calls(probe)
        outcomes: dict[str, bool] = {}

        async def settle(job: Job) -> None:
            n = int(job.id[1:])
            if n % 3 == 0:
                outcomes[job.id] = await store.job_complete(job.id, "w", {"n": n}, attempt=job.attempts)
            elif n % 3 == 1:
                outcomes[job.id] = await store.job_retry(job.id, "w", 99.0, "later", attempt=job.attempts)
            else:  # a stale run: refused, alone
                outcomes[job.id] = await store.job_complete(job.id, "w", {"n": n}, attempt=job.attempts + 1)

        async with anyio.create_task_group() as tg:
            for job in claimed:
                tg.start_soon(settle, job)
        assert await script_calls(probe) - before <= 2  # twelve outcomes, one round trip
        assert outcomes == {job.id: int(job.id[1:]) % 3 != 2 for job in claimed}
        states = {job.id: (await store.job_get(job.id) or job).state for job in claimed}
        assert states == {job.id: ("done", "queued", "running")[int(job.id[1:]) % 3] for job in claimed}
    finally:
        await probe.aclose()
        await store.aclose()


async def test_a_new_job_is_written_and_indexed_in_eight_redis_commands() -> None:
    # A redis-server of its own, so no other test's commands are counted.
    with running_redis_server() as url:
        store = RedisStore.from_url(url, clock=FakeClock(time.time()), prefix="t:")
        probe = redis.asyncio.Redis.from_url(url)
        try:
            await store.ping()
            await store.job_enqueue(Job(id="warm", kind="test", payload={}))  # loads the script
            await probe.config_resetstat()
            await store.job_enqueue(Job(id="j1", kind="test", payload={"i": 1}, key="k1"))
            stats = await probe.info("commandstats")
            inside = {name: int(v["calls"]) for name, v in stats.items() if name not in _NOT_THE_SCRIPTS}
            # HGET (its key), EXISTS (its id), HSET (the job), 4 ZADDs (indexes), HSET (its key).
            assert sum(inside.values()) <= 8, inside
            (job, created) = await store.job_enqueue(Job(id="j2", kind="test", payload={}, key="k1"))
            assert (job.id, created) == ("j1", False)
            assert [j.id for j in await store.job_list(state="queued")] == ["warm", "j1"]
            # Indexed by kind as well: a claim for the kind finds both.
            claimed = await store.job_claim_many("w", time.time() + 1, 30, limit=5, kind="test")
            assert sorted(j.id for j in claimed) == ["j1", "warm"]
        finally:
            await probe.aclose()
            await store.aclose()


_NOT_THE_SCRIPTS = {"cmdstat_evalsha", "cmdstat_eval", "cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config"}
