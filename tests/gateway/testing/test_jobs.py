"""`FakeJobs`: enqueues are recorded (one job per key), and jobs run when the test says, with the
gateway's outcomes: done with the handler's dict, retried, dead, or stopped by a lost lease."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from gateway.plugin import (
    Context,
    JobError,
    JobInfo,
    NotFound,
    Overloaded,
    Permission,
    Plugin,
    RetryJob,
    unverified,
)
from gateway.testing import FakeContext

pytestmark = pytest.mark.anyio


class Nothing(BaseModel):
    pass


plugin = Plugin("jobby", settings=Nothing, verifier=unverified, permissions={Permission.JOBS, Permission.STORAGE})
failures: dict[str, list[BaseException]] = {}


@plugin.job("work")
async def work(job: JobInfo, ctx: Context) -> Any:
    queued = failures.get(job.payload["name"], [])
    if queued:
        raise queued.pop(0)
    job.emit({"type": "progress", "attempt": job.attempt})
    await job.fence()
    await ctx.storage.set(f"done:{job.payload['name']}", str(job.attempt), fence=job.lease)
    if job.payload.get("then"):
        await ctx.jobs.enqueue("work", {"name": job.payload["then"]})
    return {"attempt": job.attempt}


async def test_enqueues_are_recorded_once_per_key_and_run_later() -> None:
    ctx = FakeContext(plugin)
    first = await ctx.jobs.enqueue("work", {"name": "a", "then": "b"}, key="k1", delay=5)
    assert await ctx.jobs.enqueue("work", {"name": "other"}, key="k1") == first
    [job] = ctx.jobs.enqueued
    assert (job.name, job.payload, job.delay, job.state) == ("work", {"name": "a", "then": "b"}, 5, "queued")
    with pytest.raises(NotFound):
        await ctx.jobs.enqueue("nope", {})
    assert await ctx.storage.get("done:a") is None  # nothing ran yet

    runs = await ctx.jobs.run_all()
    assert [r.payload["name"] for r in runs] == ["a", "b"]
    assert ctx.storage.data == {"done:a": "1", "done:b": "1"}
    status = await ctx.jobs.get(first)
    assert status is not None and (status.state, status.result, status.attempts) == ("done", {"attempt": 1}, 1)
    assert runs[0].events == [{"type": "progress", "attempt": 1}]
    assert await ctx.jobs.get("job_404") is None


async def test_retries_and_dead_letters_like_the_workers() -> None:
    ctx = FakeContext(plugin)
    failures["retried"] = [RetryJob("later", after=30), Overloaded("full", retry_after=2), RuntimeError("boom")]
    failures["fatal"] = [JobError("no such channel")]
    failures["hopeless"] = [RuntimeError("again")] * 3
    retried = await ctx.jobs.enqueue("work", {"name": "retried"})
    fatal = await ctx.jobs.enqueue("work", {"name": "fatal"})
    hopeless = await ctx.jobs.enqueue("work", {"name": "hopeless"}, max_attempts=3)

    once = await ctx.jobs.run(retried)
    assert (once.state, once.error, once.due_at - ctx.clock.time()) == ("queued", "later", 30)
    await ctx.jobs.run_all()

    assert (ctx.jobs.jobs[retried].state, ctx.jobs.jobs[retried].attempts) == ("done", 4)
    assert (ctx.jobs.jobs[fatal].state, ctx.jobs.jobs[fatal].error) == ("dead", "no such channel")
    dead = ctx.jobs.jobs[hopeless]
    assert (dead.state, dead.attempts, dead.error) == ("dead", 3, "RuntimeError: again")
    assert isinstance(dead.exception, RuntimeError)
    with pytest.raises(AssertionError, match="not queued"):
        await ctx.jobs.run(hopeless)


async def test_a_lost_lease_stops_the_run_before_it_writes() -> None:
    ctx = FakeContext(plugin)

    @plugin.job("slow")
    async def slow(job: JobInfo, ctx: Context) -> None:
        assert job.lease.held()
        job.lease.lose()  # type: ignore[attr-defined]  # another run took the job over meanwhile
        await ctx.storage.set("written", "yes", fence=job.lease)

    job_id = await ctx.jobs.enqueue("slow", {})
    job = await ctx.jobs.run(job_id)
    assert job.state == "queued" and job.error is None
    assert await ctx.storage.get("written") is None


async def test_start_runs_at_once_and_relays_progress() -> None:
    ctx = FakeContext(plugin)
    run, created = await ctx.jobs.start("work", {"name": "watched"}, key="w")
    assert created and run.local
    assert [event async for event in run.events()] == [{"type": "progress", "attempt": 1}]
    done = await run.wait(timeout=5)
    assert done is not None and done.result == {"attempt": 1}

    again, created = await ctx.jobs.start("work", {"name": "watched"}, key="w")
    assert not created and again.id == run.id
    assert [event async for event in again.events()] == []
    assert await again.wait(timeout=5) is done
