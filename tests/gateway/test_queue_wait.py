"""A worker waiting for work stops when it is told to, even as work arrives (Python 3.11 `wait_for`
could swallow that cancellation, and a stopping gateway hung)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from gateway.clock import SystemClock
from gateway.jobs.queue import JobQueue
from gateway.security.crypto import SecretBox
from gateway.storage.base import Store

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("turns", range(5))
async def test_a_waiting_worker_is_cancelled_even_when_a_job_arrives_at_that_moment(turns: int) -> None:
    queue = JobQueue(cast(Store, None), SystemClock(), cast(SecretBox, None))  # waiting touches neither
    waiting = asyncio.create_task(queue.wait(60))
    for _ in range(3):
        await asyncio.sleep(0)  # the worker is waiting
    queue.notify()
    for _ in range(turns):
        await asyncio.sleep(0)
    if waiting.cancel():  # still running: the stop must win, never a silent return
        with pytest.raises(asyncio.CancelledError):
            await waiting
    else:
        await waiting  # it had already taken the job


async def test_a_waiter_that_claims_in_batches_takes_every_wake_up_so_far() -> None:
    queue = JobQueue(cast(Store, None), SystemClock(), cast(SecretBox, None))
    await queue.wait(0, kind="cb")  # workers of their own kind are waiting: wake-ups are kept for them
    for _ in range(5):
        queue.notify("cb")
    await queue.wait(60, kind="cb", every=True)  # one claim will take all five jobs
    second = asyncio.create_task(queue.wait(60, kind="cb"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not second.done()  # no stale wake-up left: the next waiter sleeps until a new job
    queue.notify("cb")
    await second
    await queue.wait(60)  # (the general workers' wake-ups are their own)
