"""Job workers: run, retry with backoff, dead-letter, replay, lease hand-back, plugin jobs end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from endpoints.echo import plugin as echo
from gateway.admin.usecases import delete_endpoint
from gateway.clock import FakeClock
from gateway.delivery.callback_jobs import CALLBACK_JOB
from gateway.exceptions import StoreError
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import open_gateway
from gateway.jobs.queue import JobQueue
from gateway.jobs.workers import JobWorkers, job_backoff
from gateway.metrics import Metrics
from gateway.plugin import JobError, RetryJob
from gateway.storage.base import Job
from gateway.storage.sqlite import SQLiteStore
from gateway.testing.platforms.waiting import wait_until
from tests.support.gateway import make_settings, running_app

pytestmark = pytest.mark.anyio


def test_backoff_grows_caps_and_jitters() -> None:
    assert job_backoff(1, 0.5) == 2.0
    assert job_backoff(3, 0.5) == 8.0
    assert job_backoff(30, 0.5) == 600.0
    assert job_backoff(2, 0.0) == 2.0 and job_backoff(2, 1.0) == 6.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(str(tmp_path / "jobs.db"), clock=FakeClock())
    yield opened
    await opened.aclose()


def workers(
    store: SQLiteStore, clock: FakeClock, handlers: dict[str, Any], metrics: Metrics | None = None, **options: Any
) -> JobWorkers:
    return JobWorkers(
        store=store,
        queue=JobQueue(store, clock),
        clock=clock,
        handlers=handlers,
        metrics=metrics or Metrics(),
        **{"concurrency": 1, "lease": 30, "rand": lambda: 0.5, **options},
    )


async def claim(store: SQLiteStore, pool: JobWorkers, clock: FakeClock) -> Job:
    job = await store.job_claim(pool.owner, clock.time(), 30)
    assert job is not None
    return job


async def test_success_stores_the_result(store: SQLiteStore) -> None:
    clock = FakeClock()
    seen: list[dict[str, Any]] = []

    async def handler(job: Job, emit: Any, lease: Any) -> dict[str, Any]:
        seen.append(job.payload)
        return {"ok": 1}

    metrics = Metrics()
    pool = workers(store, clock, {"k": handler}, metrics)
    queued = await JobQueue(store, clock).enqueue("k", {"n": 1})
    await pool.run_job(await claim(store, pool, clock))
    done = await store.job_get(queued.id)
    assert done is not None and done.state == "done" and done.result == {"ok": 1}
    assert seen == [{"n": 1}]
    assert metrics.jobs.value("k", "done") == 1


async def test_failures_retry_with_backoff_then_dead_letter(store: SQLiteStore) -> None:
    clock = FakeClock()

    async def failing(job: Job, emit: Any, lease: Any) -> None:
        raise ValueError("nope")

    pool = workers(store, clock, {"k": failing})
    queued = await JobQueue(store, clock).enqueue("k", {}, max_attempts=2)
    await pool.run_job(await claim(store, pool, clock))
    retried = await store.job_get(queued.id)
    assert retried is not None and retried.state == "queued"
    assert retried.due_at == clock.time() + 2.0
    assert retried.last_error == "ValueError: nope"
    assert await store.job_claim(pool.owner, clock.time(), 30) is None  # not due yet
    clock.advance(2.0)
    await pool.run_job(await claim(store, pool, clock))
    dead = await store.job_get(queued.id)
    assert dead is not None and dead.state == "dead" and dead.attempts == 2
    assert await store.job_replay(queued.id, clock.time())
    again = await store.job_get(queued.id)
    assert again is not None and again.state == "queued" and again.attempts == 0


async def test_retry_job_and_job_error(store: SQLiteStore) -> None:
    clock = FakeClock()

    async def later(job: Job, emit: Any, lease: Any) -> None:
        raise RetryJob("busy", after=42)

    async def fatal(job: Job, emit: Any, lease: Any) -> None:
        raise JobError("bad payload")

    pool = workers(store, clock, {"later": later, "fatal": fatal})
    queue = JobQueue(store, clock)
    a = await queue.enqueue("later", {})
    await pool.run_job(await claim(store, pool, clock))
    b = await queue.enqueue("fatal", {})
    await pool.run_job(await claim(store, pool, clock))
    job_a, job_b = await store.job_get(a.id), await store.job_get(b.id)
    assert job_a is not None and job_a.due_at == clock.time() + 42
    assert job_b is not None and job_b.state == "dead" and job_b.last_error == "bad payload"
    c = await queue.enqueue("unknown-kind", {})
    await pool.run_job(await claim(store, pool, clock))
    job_c = await store.job_get(c.id)
    assert job_c is not None and job_c.state == "dead"


async def test_idempotency_key_enqueues_once(store: SQLiteStore) -> None:
    queue = JobQueue(store, FakeClock())
    first = await queue.enqueue("k", {"v": 1}, key="same")
    second = await queue.enqueue("k", {"v": 2}, key="same")
    assert first.id == second.id


async def test_cancelled_job_is_handed_back_at_once(store: SQLiteStore) -> None:
    clock = FakeClock()
    started = asyncio.Event()

    async def slow(job: Job, emit: Any, lease: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    pool = workers(store, clock, {"k": slow})
    queued = await JobQueue(store, clock).enqueue("k", {})
    task = asyncio.create_task(pool.run_job(await claim(store, pool, clock)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    handed_back = await store.job_get(queued.id)
    assert handed_back is not None and handed_back.state == "queued" and handed_back.due_at == clock.time()


async def test_worker_loop_runs_queued_jobs_until_cancelled(store: SQLiteStore) -> None:
    clock = FakeClock()
    done = asyncio.Event()

    async def handler(job: Job, emit: Any, lease: Any) -> None:
        done.set()

    pool = workers(store, clock, {"k": handler})
    runner = asyncio.create_task(pool.run())
    await JobQueue(store, clock).enqueue("k", {})
    await asyncio.wait_for(done.wait(), 5)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_the_worker_loop_stops_even_when_a_handler_swallows_the_cancellation(store: SQLiteStore) -> None:
    clock = FakeClock()
    started = asyncio.Event()

    async def stubborn(job: Job, emit: Any, lease: Any) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # a library that finishes its work when cancelled
            pass
        return {"finished": True}

    pool = workers(store, clock, {"k": stubborn})
    runner = asyncio.create_task(pool.run())
    queued = await JobQueue(store, clock).enqueue("k", {})
    await asyncio.wait_for(started.wait(), 5)
    runner.cancel()
    done, _ = await asyncio.wait({runner}, timeout=10)  # (real seconds: the loop ran on for good before)
    assert done and runner.cancelled()
    finished = await store.job_get(queued.id)
    assert finished is not None and finished.state == "done" and finished.result == {"finished": True}


async def test_plugin_job_end_to_end_through_the_endpoint(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), registry=PluginRegistry([echo])) as running:
        record, url = await running.gateway.endpoints.create("echo", [], {})
        path = running.path(url)
        queued = await running.client.post(f"{path}/jobs/greeting", content=b"hello", headers={"x-id": "d1"})
        assert queued.status_code == 202
        again = await running.client.post(f"{path}/jobs/greeting", content=b"other", headers={"x-id": "d1"})
        assert again.json()["queued"] == queued.json()["queued"]  # same delivery id: same job
        for _ in range(200):
            # The handler stores the value before its worker records the job done: wait for both.
            read = await running.client.get(f"{path}/jobs/greeting")
            job = await running.gateway.store.job_get(queued.json()["queued"])
            if read.status_code == 200 and job is not None and job.state == "done":
                break
            await asyncio.sleep(0.02)
        assert read.json() == {"value": "hello"}
        assert job is not None and job.state == "done" and job.result == {"stored": "greeting"}


async def test_plugin_job_of_a_deleted_endpoint_is_dead_lettered(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), registry=PluginRegistry([echo]), run_workers=False) as running:
        gateway = running.gateway
        record, _ = await gateway.endpoints.create("echo", [], {})
        job, _ = await gateway.queue.enqueue_plugin_job(record.id, "store", {"name": "a", "value": "b"})
        await delete_endpoint(record.id, endpoints=gateway.endpoints, requests=gateway.requests, store=gateway.store)
        pool = gateway.workers
        claimed = await gateway.store.job_claim(pool.owner, gateway.clock.time(), 30)
        assert claimed is not None
        await pool.run_job(claimed)
        dead = await gateway.store.job_get(job.id)
        assert dead is not None and dead.state == "dead" and "gone" in (dead.last_error or "")


async def test_start_runs_here_and_relays_progress(store: SQLiteStore) -> None:
    clock = FakeClock()

    async def chatty(job: Job, emit: Any, lease: Any) -> dict[str, Any]:
        for i in range(3):
            emit({"step": i})
        return {"done": True}

    pool = workers(store, clock, {"k": chatty})
    queued = await JobQueue(store, clock).enqueue("k", {}, delay=60)
    run = await pool.start(queued.id)
    assert run.local
    assert [e async for e in run.events()] == [{"step": 0}, {"step": 1}, {"step": 2}]
    finished = await run.wait(timeout=5)
    assert finished is not None and finished.state == "done" and finished.result == {"done": True}
    # A second start finds nothing to claim: it only reports the outcome.
    again = await pool.start(queued.id)
    assert not again.local
    assert [e async for e in again.events()] == []
    assert (await again.wait(timeout=1)) is not None


async def test_worker_loop_survives_the_store_failing_while_recording_an_outcome(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store outage between running a job and recording it must not kill the worker (its lease expires)."""
    clock = FakeClock()
    ran: list[int] = []
    second = asyncio.Event()

    async def handler(job: Job, emit: Any, lease: Any) -> None:
        ran.append(job.payload["n"])
        if job.payload["n"] == 2:
            second.set()

    async def down(*args: Any, **kwargs: Any) -> bool:
        raise StoreError("the store is unreachable")

    complete, retry = store.job_complete, store.job_retry
    monkeypatch.setattr(store, "job_complete", down)
    monkeypatch.setattr(store, "job_retry", down)
    pool = workers(store, clock, {"k": handler})
    runner = asyncio.create_task(pool.run())
    queue = JobQueue(store, clock)
    await queue.enqueue("k", {"n": 1})
    for _ in range(500):
        if ran:
            break
        await asyncio.sleep(0.01)
    monkeypatch.setattr(store, "job_complete", complete)
    monkeypatch.setattr(store, "job_retry", retry)
    await queue.enqueue("k", {"n": 2})
    try:
        await asyncio.wait_for(second.wait(), 5)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_a_failed_hand_back_at_shutdown_still_cancels(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    started = asyncio.Event()

    async def slow(job: Job, emit: Any, lease: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    async def down(*args: Any, **kwargs: Any) -> bool:
        raise StoreError("the store is unreachable")

    pool = workers(store, clock, {"k": slow})
    await JobQueue(store, clock).enqueue("k", {})
    task = asyncio.create_task(pool.run_job(await claim(store, pool, clock)))
    await started.wait()
    monkeypatch.setattr(store, "job_retry", down)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_finished_jobs_are_purged_after_the_retention(store: SQLiteStore) -> None:
    clock = FakeClock()

    async def handler(job: Job, emit: Any, lease: Any) -> None:
        return None

    pool = JobWorkers(
        store=store,
        queue=JobQueue(store, clock),
        clock=clock,
        handlers={"k": handler},
        metrics=Metrics(),
        retention=100,
    )
    done = await JobQueue(store, clock).enqueue("k", {})
    await pool.run_job(await claim(store, pool, clock))
    waiting = await JobQueue(store, clock).enqueue("k", {}, delay=1000)
    clock.advance(50)
    assert await pool.purge_once() == 0
    clock.advance(100)
    assert await pool.purge_once() == 1
    assert await store.job_get(done.id) is None
    assert await store.job_get(waiting.id) is not None  # only finished jobs go


# -- leases: a run that lost its job stops, and writes nothing more -------------------------------


@pytest.mark.parametrize("how", ["frozen", "skewed"])
async def test_a_run_that_lost_its_lease_is_stopped_before_its_next_write(store: SQLiteStore, how: str) -> None:
    """Frozen: this process slept past its lease (its own clock says so, no round trip needed).
    Skewed: its clock still says the lease holds, but another run claimed the job; the store says so."""
    clock = FakeClock()
    go = asyncio.Event()
    wrote: list[str] = []
    paused = asyncio.Event()

    async def answer(job: Job, emit: Any, lease: Any) -> dict[str, Any]:
        await lease.check()
        wrote.append("placeholder")
        await lease.record("out:" + job.id, "[placeholder]", ttl=None)
        paused.set()
        await go.wait()
        await lease.record("out:" + job.id, "[placeholder, part 2]", ttl=None)
        await lease.check()
        wrote.append("part 2")
        return {"status": "answered"}

    metrics = Metrics()
    pool = workers(store, clock, {"k": answer}, metrics)
    queued = await JobQueue(store, clock).enqueue("k", {})
    run = asyncio.create_task(pool.run_job(await claim(store, pool, clock)))
    await paused.wait()
    if how == "frozen":
        clock.advance(31)
        taken = await store.job_claim("other-replica", clock.time(), 30)
    else:
        taken = await store.job_claim("other-replica", clock.time() + 31, 30)
    assert taken is not None and taken.attempts == 2
    go.set()
    await run  # returns: losing a job is not an error of the worker

    assert wrote == ["placeholder"]
    assert await store.kv_get("out:" + queued.id) == "[placeholder]"
    job = await store.job_get(queued.id)
    assert job is not None and (job.state, job.lease_owner, job.attempts, job.result) == (
        "running",
        "other-replica",
        2,
        None,
    )
    assert metrics.jobs.value("k", "lost") == 1


async def test_the_heartbeat_cancels_a_run_whose_lease_was_taken_over(store: SQLiteStore) -> None:
    """A run waiting (on Dify, say) is cancelled as soon as its heartbeat finds the job taken over."""
    clock = FakeClock()
    started, cancelled = asyncio.Event(), asyncio.Event()
    wrote: list[str] = []

    async def answer(job: Job, emit: Any, lease: Any) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # an answer that takes forever
        finally:
            cancelled.set()
        wrote.append("after")

    pool = workers(store, clock, {"k": answer}, lease=0.3)  # a heartbeat every 0.1 s
    queued = await JobQueue(store, clock).enqueue("k", {})
    job = await store.job_claim(pool.owner, clock.time(), 0.3)
    assert job is not None
    run = asyncio.create_task(pool.run_job(job))
    await started.wait()
    assert await store.job_claim("other-replica", clock.time() + 10, 30) is not None
    clock.advance(0.1)  # the heartbeat's time (it waits on the injected clock)
    await asyncio.wait_for(run, 10)
    assert cancelled.is_set() and wrote == []
    taken = await store.job_get(queued.id)
    assert taken is not None and (taken.state, taken.lease_owner) == ("running", "other-replica")


async def test_callbacks_are_delivered_while_answers_hold_every_general_worker(tmp_path: Path) -> None:
    gateway = await open_gateway(make_settings(tmp_path, workers=2, callback_workers=1))
    release = asyncio.Event()
    started: list[str] = []
    answered: list[str] = []
    delivered: list[str] = []

    async def slow_answer(job: Job, emit: Any, lease: Any) -> None:
        started.append(job.id)
        await release.wait()
        answered.append(job.id)

    async def deliver(job: Job, emit: Any, lease: Any) -> None:
        delivered.append(job.id)

    gateway.job_handlers["plugin"] = slow_answer
    gateway.job_handlers[CALLBACK_JOB] = deliver
    for n in range(100):
        await gateway.queue.enqueue("plugin", {"n": n})
    callbacks = [(await gateway.queue.enqueue(CALLBACK_JOB, {"n": n})).id for n in range(5)]
    runner = asyncio.create_task(gateway.workers.run())
    try:
        for _ in range(1000):
            if len(delivered) == len(callbacks):
                break
            await asyncio.sleep(0.01)
        assert sorted(delivered) == sorted(callbacks)
        assert answered == [] and len(started) == 2  # every answer worker is still busy
    finally:
        release.set()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        await gateway.aclose()


async def test_the_heartbeat_runs_on_the_injected_clock(store: SQLiteStore) -> None:
    """It renews when the clock says so, and never moves a fake clock's time by itself."""
    clock = FakeClock()
    started, release = asyncio.Event(), asyncio.Event()

    async def answer(job: Job, emit: Any, lease: Any) -> None:
        started.set()
        await release.wait()

    pool = workers(store, clock, {"k": answer}, lease=30)
    queued = await JobQueue(store, clock).enqueue("k", {})
    run = asyncio.create_task(pool.run_job(await claim(store, pool, clock)))
    await started.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    assert clock.monotonic() == 0.0  # a waiting heartbeat leaves fake time alone
    claimed = await store.job_get(queued.id)
    assert claimed is not None and claimed.lease_until == clock.time() + 30
    clock.advance(10)  # a third of the lease: the heartbeat renews
    for _ in range(100):
        renewed = await store.job_get(queued.id)
        if renewed is not None and renewed.lease_until == clock.time() + 30:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the heartbeat did not renew the lease when the clock said so")
    release.set()
    await run


@pytest.mark.parametrize("failure", [RuntimeError("boom"), JobError("bad"), RetryJob("later")])
async def test_a_run_that_fails_after_losing_its_job_counts_as_lost(store: SQLiteStore, failure: Exception) -> None:
    # The store refuses the stale run's outcome; the metrics must not count a retry or a death.
    clock = FakeClock()
    paused, go = asyncio.Event(), asyncio.Event()

    async def handler(job: Job, emit: Any, lease: Any) -> dict[str, Any]:
        paused.set()
        await go.wait()
        raise failure

    metrics = Metrics()
    pool = workers(store, clock, {"k": handler}, metrics)
    queued = await JobQueue(store, clock).enqueue("k", {})
    run = asyncio.create_task(pool.run_job(await claim(store, pool, clock)))
    await paused.wait()
    taken = await store.job_claim("other-replica", clock.time() + 31, 30)
    assert taken is not None and taken.attempts == 2
    go.set()
    await run

    job = await store.job_get(queued.id)
    assert job is not None and (job.state, job.lease_owner, job.attempts) == ("running", "other-replica", 2)
    assert metrics.jobs.value("k", "lost") == 1
    assert metrics.jobs.value("k", "retry") == metrics.jobs.value("k", "dead") == 0


async def test_a_dedicated_lane_claims_a_job_for_every_idle_worker_in_one_store_call(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    claims: list[tuple[int, int]] = []  # (limit, jobs claimed) of each of the lane's claims
    claim_many = store.job_claim_many

    async def recorded(*args: Any, **kwargs: Any) -> list[Job]:
        jobs = await claim_many(*args, **kwargs)
        claims.append((kwargs["limit"], len(jobs)))
        return jobs

    monkeypatch.setattr(store, "job_claim_many", recorded)
    answering, release = asyncio.Event(), asyncio.Event()
    running: list[str] = []
    most = 0
    ran: list[str] = []

    async def answer(job: Job, emit: Any, lease: Any) -> None:
        answering.set()
        await asyncio.Event().wait()  # holds the one general worker for good

    async def deliver(job: Job, emit: Any, lease: Any) -> None:
        nonlocal most
        running.append(job.id)
        most = max(most, len(running))
        await release.wait()
        running.remove(job.id)
        ran.append(job.id)

    pool = workers(store, clock, {"answer": answer, "cb": deliver}, dedicated={"cb": 4}, poll_interval=0.05)
    await JobQueue(store, clock).enqueue("answer", {})
    runner = asyncio.create_task(pool.run())
    try:
        await asyncio.wait_for(answering.wait(), 10)
        # Stored together (one transaction) without waking anyone, as by another process: the
        # lane finds them by polling.
        queued = [f"cb-{n}" for n in range(10)]
        await asyncio.gather(
            *(store.job_enqueue(Job(id=job_id, kind="cb", payload={}, due_at=clock.time())) for job_id in queued)
        )
        await wait_until(lambda: len(running) == 4, lambda: f"running {running}, claims {claims}")
        assert [c for c in claims if c[1]] == [(4, 4)]  # one call claimed a job for each of the four
        release.set()
        await wait_until(lambda: len(ran) == len(queued), lambda: f"ran {ran}")
        assert sorted(ran) == queued and most == 4  # each ran once, never more at once than the lane's size
        # Claims wait for half the lane to be idle: the 6 left went in batches of 2 or more.
        assert all(limit >= 2 for limit, _ in claims) and len([c for c in claims if c[1]]) <= 4
        for job_id in queued:
            done = await store.job_get(job_id)
            assert done is not None and (done.state, done.attempts) == ("done", 1)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_stopping_a_lane_hands_its_running_jobs_back_at_once(store: SQLiteStore) -> None:
    clock = FakeClock()
    started: list[str] = []

    async def deliver(job: Job, emit: Any, lease: Any) -> None:
        started.append(job.id)
        await asyncio.Event().wait()

    pool = workers(store, clock, {"cb": deliver}, dedicated={"cb": 3}, poll_interval=0.05)
    queued = [(await JobQueue(store, clock).enqueue("cb", {"n": n})).id for n in range(3)]
    runner = asyncio.create_task(pool.run())
    await wait_until(lambda: len(started) == 3, lambda: f"started {started}")
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    for job_id in queued:
        handed_back = await store.job_get(job_id)
        assert handed_back is not None
        assert (handed_back.state, handed_back.last_error) == ("queued", "interrupted")
        assert handed_back.due_at == clock.time()


async def test_runs_started_here_share_one_heartbeat_and_each_lease_is_renewed(store: SQLiteStore) -> None:
    """A started run is one task, its handler running in it: one heartbeat renews every lease (a
    task or two more per run cost each open answer stream memory), and it is gone once no run is left."""
    clock = FakeClock()
    release = asyncio.Event()
    started: list[str] = []

    async def answer(job: Job, emit: Any, lease: Any) -> None:
        started.append(job.id)
        await release.wait()

    pool = workers(store, clock, {"k": answer}, lease=30)
    queue = JobQueue(store, clock)
    before = len(asyncio.all_tasks())
    ids = [(await queue.enqueue("k", {"n": n}, delay=60)).id for n in range(5)]
    runs = [await pool.start(job_id) for job_id in ids]
    await wait_until(lambda: len(started) == 5, lambda: f"started {started}")
    assert all(run.local for run in runs)
    assert len(asyncio.all_tasks()) - before == 5 + 1  # a task per run; one heartbeat
    clock.advance(10)  # a third of the lease: every lease is renewed

    async def renewed() -> bool:
        jobs = [await store.job_get(job_id) for job_id in ids]
        return all(job is not None and job.lease_until == clock.time() + 30 for job in jobs)

    for _ in range(200):
        if await renewed():
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the heartbeat did not renew every lease")
    release.set()
    for run in runs:
        assert await run.wait(timeout=10) is not None
    await wait_until(lambda: len(asyncio.all_tasks()) == before, lambda: f"tasks left {asyncio.all_tasks()}")
    # (the heartbeat ended with the last run)


async def test_a_started_jobs_events_survive_a_reader_that_stopped_and_end_for_every_reader(
    store: SQLiteStore,
) -> None:
    """A reader cancelled while waiting (a heartbeat's timeout) loses nothing: the next reads on;
    once the run ended, every reader ends at once (the last event is not taken by the first)."""
    clock = FakeClock()
    go, more = asyncio.Event(), asyncio.Event()

    async def answer(job: Job, emit: Any, lease: Any) -> dict[str, Any]:
        await go.wait()
        emit({"n": 1})
        emit({"n": 2})
        await more.wait()
        emit({"n": 3})
        return {"status": "answered"}

    pool = workers(store, clock, {"k": answer})
    queued = await JobQueue(store, clock).enqueue("k", {}, delay=60)
    run = await pool.start(queued.id)
    first = run.events().__aiter__()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await anext(first)
    go.set()
    second = run.events()
    assert await anext(aiter(second)) == {"n": 1}
    await second.aclose()  # type: ignore[attr-defined]  # a reader that stops after one event leaves the others to the next
    more.set()
    assert [event async for event in run.events()] == [{"n": 2}, {"n": 3}]

    async def read() -> list[dict[str, Any]]:
        return [event async for event in run.events()]

    assert await asyncio.wait_for(read(), 10) == []  # ended: a second reader does not wait for ever
    waited = await asyncio.gather(run.wait(timeout=10), run.wait(timeout=10))
    assert all(job is not None and job.result == {"status": "answered"} for job in waited)


async def test_a_started_jobs_wait_that_times_out_leaves_the_others_waiting(store: SQLiteStore) -> None:
    clock = FakeClock()
    release = asyncio.Event()

    async def answer(job: Job, emit: Any, lease: Any) -> dict[str, Any]:
        await release.wait()
        return {"status": "answered"}

    pool = workers(store, clock, {"k": answer})
    queued = await JobQueue(store, clock).enqueue("k", {}, delay=60)
    run = await pool.start(queued.id)
    patient = asyncio.create_task(run.wait(timeout=30))
    assert await run.wait(timeout=0.01) is None
    assert not patient.done()
    release.set()
    job = await patient
    assert job is not None and job.result == {"status": "answered"}


@pytest.mark.parametrize("how", ["taken over", "shut down"])
async def test_a_started_run_stops_when_its_lease_is_lost_or_the_process_stops(store: SQLiteStore, how: str) -> None:
    """The handler runs in the started run's own task: a lost lease stops it and counts it lost
    (nothing recorded: the other run's outcome counts); a shutdown hands the job back at once."""
    clock = FakeClock()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def answer(job: Job, emit: Any, lease: Any) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    metrics = Metrics()
    pool = workers(store, clock, {"k": answer}, metrics, lease=0.3)  # a heartbeat every 0.1 s
    queued = await JobQueue(store, clock).enqueue("k", {}, delay=60)
    run = await pool.start(queued.id)
    await started.wait()
    if how == "taken over":
        assert await store.job_claim("other-replica", clock.time() + 10, 30, job_id=queued.id) is not None
        clock.advance(0.1)  # the heartbeat's time: it finds the job taken over
        assert await run.wait(timeout=10) is None  # not done: another run holds it
        job = await store.job_get(queued.id)
        assert job is not None and (job.state, job.lease_owner) == ("running", "other-replica")
        assert metrics.jobs.value("k", "lost") == 1
    else:
        await pool.cancel_local()
        job = await store.job_get(queued.id)
        assert job is not None and (job.state, job.last_error) == ("queued", "interrupted")
        assert metrics.jobs.value("k", "interrupted") == 1
    assert cancelled.is_set()
    assert [event async for event in run.events()] == []
