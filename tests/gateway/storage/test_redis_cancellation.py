"""Redis only: a store call whose task is cancelled ends cancelled, even when the client library
finishes the command anyway (redis-py 8 can: a cancelled claim then returned normally, the job
workers' loop went on, and a stopping gateway waited for them forever)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio

from gateway.clock import SystemClock
from gateway.jobs.queue import JobQueue
from gateway.jobs.workers import JobWorkers
from gateway.metrics import Metrics
from gateway.storage.redis import RedisStore

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


class FinishesWhenCancelled(redis.asyncio.Redis):
    """A real client that completes a command its caller was cancelled in and returns its reply,
    as redis-py does when the cancellation lands at the wrong moment (it happens under load)."""

    entered: asyncio.Event

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        command = asyncio.ensure_future(super().execute_command(*args, **options))  # type: ignore[no-untyped-call]
        self.entered.set()
        try:
            return await asyncio.shield(command)
        except asyncio.CancelledError:
            return await command


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[tuple[RedisStore, FinishesWhenCancelled]]:
    client = cast(FinishesWhenCancelled, FinishesWhenCancelled.from_url(redis_url, decode_responses=True))
    client.entered = asyncio.Event()
    opened = RedisStore(client, clock=SystemClock(), prefix=f"cancel-{uuid.uuid4().hex}:")
    yield opened, client
    await opened.aclose()


async def test_a_call_cancelled_in_flight_ends_cancelled(store: tuple[RedisStore, FinishesWhenCancelled]) -> None:
    opened, client = store
    call = asyncio.create_task(opened.job_claim("me", 1.0, 30))
    await client.entered.wait()  # the command is on its way
    call.cancel()
    await asyncio.wait({call})
    assert call.cancelled()


async def test_a_timeout_around_a_call_still_times_out(store: tuple[RedisStore, FinishesWhenCancelled]) -> None:
    opened, client = store
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):  # cancels the call as it starts: its reply comes too late
            await opened.kv_get("k")
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_job_workers_stop_when_cancelled_during_a_claim(store: tuple[RedisStore, FinishesWhenCancelled]) -> None:
    opened, client = store
    clock = SystemClock()
    queue = JobQueue(opened, clock)
    workers = JobWorkers(store=opened, queue=queue, clock=clock, handlers={}, metrics=Metrics(), concurrency=1)
    running = asyncio.create_task(workers.run())
    await client.entered.wait()  # a worker is claiming
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=10)  # (real seconds: it hung for good before)
    assert done and running.cancelled()
