"""Redis only: concurrent enqueues share one round trip (group commit)."""

from __future__ import annotations

import time
import uuid

import anyio
import pytest
import redis.asyncio

from gateway.clock import FakeClock
from gateway.storage.base import Job
from gateway.storage.redis import RedisStore

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
