"""The job workers in every process: they claim jobs from the store (gateway/jobs/queue.py) and run them.

A job is claimed with a lease that its worker keeps extending while the handler runs. A process
that dies stops extending; once the lease runs out any other process claims the job again, so
handlers must make their side effects idempotent (keyed). A handler that fails is retried with
backoff until `max_attempts`, then dead-lettered; dead jobs can be replayed.

Each run holds a `JobLease` (gateway/jobs/lease.py) carrying its fencing token, the attempt number: a
run whose lease was lost (found by the heartbeat, or by the fence in front of a write) is cancelled
at once, and every store update it would still make is refused. Some kinds of jobs (callback
deliveries) have workers of their own, so they never wait behind long answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from gateway.clock import Clock
from gateway.exceptions import JobError, RetryJob
from gateway.jobs.heartbeat import Heartbeat
from gateway.jobs.lease import JobLease
from gateway.jobs.queue import JobQueue
from gateway.metrics import Metrics
from gateway.storage.base import Job, Store
from gateway.storage.lock import new_owner

__all__ = ["Emit", "JobHandlerFn", "JobWorkers", "StartedJob", "job_backoff"]

logger = logging.getLogger(__name__)

PURGE_EVERY = 3600.0  # seconds between purges of finished jobs (jittered, so replicas spread out)

Emit = Callable[[dict[str, Any]], None]
JobHandlerFn = Callable[[Job, Emit, JobLease], Awaitable[dict[str, Any] | None]]


def _discard(event: dict[str, Any]) -> None:
    """Progress events of a job nobody is watching go nowhere."""


class StartedJob:
    """A job started by `JobWorkers.start`: its progress events while it runs here, then its outcome.

    When the job is already running elsewhere (another replica, or a replayed delivery), there
    are no events to relay and `wait` polls the store until the job ends.

    One of these lives as long as each streamed answer: the events wait in a list, and the one
    reader waits on one future (a queue and two events per job cost ~3 KiB per open stream).
    """

    __slots__ = ("_clock", "_done", "_ended", "_pending", "_reader", "_store", "id", "local")

    def __init__(self, job_id: str, store: Store, clock: Clock, *, local: bool) -> None:
        self.id = job_id
        self.local = local
        self._store = store
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._ended = not local  # no more events: the run stopped here, or never ran here
        self._reader: asyncio.Future[None] | None = None  # the reader of `events`, waiting for one
        self._done: asyncio.Future[None] | None = None  # callers of `wait`, made only when one waits

    def emit(self, event: dict[str, Any]) -> None:
        self._pending.append(event)
        if (reader := self._reader) is not None and not reader.done():
            reader.set_result(None)

    def finish(self, _: object = None) -> None:
        """The run stopped here (a task's done callback: its argument is the task)."""
        self._ended = True
        for waiter in (self._reader, self._done):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Progress events as the handler emits them; ends when the job stops running here.
        Each event is read once: a reader that stops early leaves the rest to the next one."""
        while True:
            if not self._pending:
                if self._ended:
                    return
                self._reader = asyncio.get_running_loop().create_future()
                try:
                    await self._reader
                finally:
                    self._reader = None
                continue
            batch, self._pending = self._pending, []
            taken = 0
            try:
                for event in batch:
                    taken += 1
                    yield event
            finally:
                if taken < len(batch):
                    self._pending[:0] = batch[taken:]

    async def wait(self, *, timeout: float, poll: float = 0.2) -> Job | None:
        """The job once done or dead (None if it isn't by `timeout`)."""
        deadline = self._clock.monotonic() + timeout
        if not self._ended:
            if self._done is None:
                self._done = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # not `wait_for`, which may drop a cancellation
                    await asyncio.shield(self._done)  # shared by every caller: one's timeout leaves it
        while True:
            job = await self._store.job_get(self.id)
            if job is None or job.state in ("done", "dead") or self._clock.monotonic() >= deadline:
                return job if job is not None and job.state in ("done", "dead") else None
            await self._clock.sleep(poll)


def _stop_if_cancelled() -> None:
    """Raise the cancellation of this worker's task if something it awaited swallowed it (a handler,
    a library: its work ended normally although the task was told to stop). Left unraised, the
    worker would loop on and a shutdown waiting for it would wait forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def job_backoff(attempt: int, rand: float) -> float:
    """Seconds before retry number `attempt` (1-based): 2, 4, 8 … capped at 10 min, with ±50 % jitter."""
    base = min(600.0, 2.0 ** max(1, attempt))
    return base * (0.5 + rand)


class JobWorkers:
    """`concurrency` workers claiming and running jobs of any kind, plus `dedicated[kind]` workers
    claiming only jobs of that kind; one heartbeat renews the lease of every run."""

    def __init__(
        self,
        *,
        store: Store,
        queue: JobQueue,
        clock: Clock,
        handlers: Mapping[str, JobHandlerFn],
        metrics: Metrics,
        concurrency: int = 8,
        dedicated: Mapping[str, int] | None = None,
        lease: float = 30.0,
        poll_interval: float = 0.5,
        retention: float = 14 * 24 * 3600.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._handlers = handlers
        self._metrics = metrics
        self._concurrency = max(1, concurrency)
        self._dedicated = {kind: count for kind, count in (dedicated or {}).items() if count > 0}
        self._lease = lease
        self._poll = poll_interval
        self._retention = retention
        self._rand = rand
        self.owner = new_owner()
        self._local: set[asyncio.Task[None]] = set()
        self._heartbeat = Heartbeat(clock, lease / 3)  # one for every run here (gateway/jobs/heartbeat.py)

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                for index in range(self._concurrency):
                    group.create_task(self._loop(), name=f"job-worker-{index}")
                for kind, count in self._dedicated.items():
                    group.create_task(self._lane(kind, count), name=f"job-lane-{kind}")
                if self._retention > 0:
                    group.create_task(self._purge_loop(), name="job-purge")
        finally:
            await self.cancel_local()

    async def purge_once(self) -> int:
        """Delete done and dead jobs untouched for longer than the retention; the number deleted."""
        return await self._store.job_purge(self._clock.time() - self._retention)

    async def _purge_loop(self) -> None:
        # Finished jobs hold user content; keeping them forever would grow the store without bound.
        while True:
            _stop_if_cancelled()
            try:
                purged = await self.purge_once()
                if purged:
                    logger.info("purged %d finished jobs", purged)
            except Exception:
                logger.exception("purging finished jobs failed")
            await self._clock.idle(PURGE_EVERY * (0.5 + self._rand()))

    async def start(self, job_id: str) -> StartedJob:
        """Claim `job_id` and run it in this process now, relaying its progress events.

        Used when a request streams a job's progress to its caller. The job stays durable: if
        this process dies, another claims it when the lease runs out. If the job can't be claimed
        (it runs elsewhere or has ended), the run only reports the outcome.
        """
        since = self._clock.monotonic()
        job = await self._store.job_claim(self.owner, self._clock.time(), self._lease, job_id=job_id)
        if job is None:
            return StartedJob(job_id, self._store, self._clock, local=False)
        run = StartedJob(job_id, self._store, self._clock, local=True)
        run_here = self.run_job(job, run.emit, since=since, own_task=True)
        task = asyncio.get_running_loop().create_task(run_here, name=f"job-{job_id}")
        self._local.add(task)
        task.add_done_callback(self._local.discard)
        task.add_done_callback(run.finish)
        return run

    async def cancel_local(self) -> None:
        """Hand jobs started with `start` back to the queue (at shutdown)."""
        tasks = list(self._local)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        """A general worker: claims the next due job, of any kind, and runs it."""
        while True:
            _stop_if_cancelled()
            since = self._clock.monotonic()
            try:
                job = await self._store.job_claim(self.owner, self._clock.time(), self._lease)
            except Exception:  # the store may be briefly unreachable: log and keep the worker alive
                logger.exception("claiming a job failed")
                await self._clock.sleep(self._poll)
                continue
            if job is None:
                # Idle workers of a pool poll together about once per interval (jobs enqueued by
                # other processes, retries coming due), not once each: polls are store writes.
                await self._queue.wait(self._poll * self._concurrency * (0.5 + self._rand()))
                continue
            await self.run_job(job, since=since)

    async def _lane(self, kind: str, size: int) -> None:
        """`size` workers for jobs of `kind` that share their claims: one store call claims a job
        for every idle one (`job_claim_many`), once at least half of them are idle, so a backlog
        costs a claim per batch, not per job.
        Each job runs at once in a task of its own, with its own lease, heartbeat and outcome,
        exactly as `run_job` runs a job claimed alone; nothing claimed waits for a worker."""
        freed = asyncio.Event()
        running: set[asyncio.Task[None]] = set()
        # Claims wait for half the lane to be idle: under a backlog, runs ending one by one would
        # otherwise be replaced one claim each, the cost this lane exists to save.
        refill = max(1, size // 2)

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            freed.set()

        # The group's exit cancels the runs still going (each hands its job back) and waits for them.
        async with asyncio.TaskGroup() as group:
            while True:
                _stop_if_cancelled()
                if size - len(running) < refill:
                    freed.clear()
                    await freed.wait()
                    continue
                idle = size - len(running)
                since = self._clock.monotonic()
                try:
                    jobs = await self._store.job_claim_many(
                        self.owner, self._clock.time(), self._lease, limit=idle, kind=kind
                    )
                except Exception:  # the store may be briefly unreachable: log and keep the lane alive
                    logger.exception("claiming jobs of kind %s failed", kind)
                    await self._clock.sleep(self._poll)
                    continue
                for job in jobs:
                    task = group.create_task(self.run_job(job, since=since), name=f"job-{kind}-{job.id}")
                    running.add(task)
                    task.add_done_callback(finished)
                if len(jobs) < idle:
                    # Nothing more is due now: wait for a job enqueued here (one claim takes every
                    # one enqueued meanwhile) or for the poll (other processes' jobs, retries due).
                    await self._queue.wait(self._poll * (0.5 + self._rand()), kind=kind, every=True)

    async def run_job(
        self, job: Job, emit: Emit = _discard, *, since: float | None = None, own_task: bool = False
    ) -> None:
        """Run one claimed job to an outcome: done, retried, dead, or lost (another run took it over).
        Never raises but `CancelledError`. `since`: the monotonic time just before the claim.
        `own_task`: the calling task runs nothing but this job, so the handler runs in it."""
        lease = JobLease(
            self._store,
            self._clock,
            job_id=job.id,
            owner=self.owner,
            attempt=job.attempts,
            lease_s=self._lease,
            since=self._clock.monotonic() if since is None else since,
        )
        try:
            await self._run_job(job, emit, lease, own_task)
        except Exception:
            # The store failed while recording the outcome: the job runs again once its lease
            # expires. Raising would end the worker loop (and with it every worker of the group).
            logger.exception("recording the outcome of job %s (%s) failed", job.id, job.kind)

    async def _run_job(self, job: Job, emit: Emit, lease: JobLease, own_task: bool) -> None:
        handler = self._handlers.get(job.kind)
        outcome = "done"
        try:
            if handler is None:
                raise JobError(f"no handler for jobs of kind {job.kind!r}")
            work = handler(job, emit, lease)
            result = await self._supervised(work, lease, here=own_task)
            if not await self._store.job_complete(job.id, self.owner, result, attempt=lease.attempt):
                outcome = "lost"  # finished, but after another run took the job: its outcome counts
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if lease.lost and (current is None or current.cancelling() == 0):
                outcome = "lost"  # stopped because another run took over: nothing to record
                return
            # Shutting down: hand the job back now rather than after its lease runs out.
            outcome = "interrupted"
            try:
                hand_back = self._store.job_retry(
                    job.id, self.owner, self._clock.time(), "interrupted", attempt=lease.attempt
                )
                await asyncio.shield(hand_back)
            except Exception:  # the cancellation must go on; the lease runs out instead
                logger.exception("handing job %s back failed", job.id)
            raise
        except RetryJob as exc:
            outcome = await self._retry_or_die(job, lease, str(exc), exc.after)
        except JobError as exc:
            outcome = "dead"
            if not await self._store.job_dead(job.id, self.owner, str(exc), attempt=lease.attempt):
                outcome = "lost"  # another run holds the job: its outcome counts
        except Exception as exc:
            logger.exception("job %s (%s) failed on attempt %d", job.id, job.kind, job.attempts)
            outcome = await self._retry_or_die(job, lease, f"{exc.__class__.__name__}: {exc}"[:500], None)
        finally:
            self._metrics.jobs.inc(job.kind, outcome)

    async def _supervised(
        self, work: Awaitable[dict[str, Any] | None], lease: JobLease, *, here: bool
    ) -> dict[str, Any] | None:
        """Run the handler in a task of its own, cancelled as soon as the lease is found lost.

        `here`: in this task instead, which runs nothing but this job (`start`): a task fewer per
        run. A lost lease cancels this task then; that cancellation is taken back once it has
        stopped the handler, so `_run_job` tells it from a shutdown's (which it still sees) and
        counts the run lost."""
        current = asyncio.current_task()
        task = current if here and current is not None else asyncio.ensure_future(work)
        stopped = False

        # A fence failing inside the handler raises LeaseLost there; cancelling the handler's own
        # task too would also cancel the clean-up its `finally` blocks await.
        def stop() -> None:
            nonlocal stopped
            if asyncio.current_task() is not task and not stopped:
                stopped = True
                task.cancel()

        lease.on_lost = stop
        self._heartbeat.add(lease)
        try:
            return await (work if task is current else task)
        finally:
            self._heartbeat.discard(lease)
            lease.on_lost = None
            if stopped and task is current:
                task.uncancel()

    async def _retry_or_die(self, job: Job, lease: JobLease, error: str, after: float | None) -> str:
        """Record a failed run: retried, dead, or lost (the store refused: another run holds the job)."""
        if job.attempts >= job.max_attempts:
            dead = await self._store.job_dead(job.id, self.owner, error, attempt=lease.attempt)
            return "dead" if dead else "lost"
        delay = job_backoff(job.attempts, self._rand()) if after is None else max(0.0, after)
        due = self._clock.time() + delay
        retried = await self._store.job_retry(job.id, self.owner, due, error, attempt=lease.attempt)
        return "retry" if retried else "lost"
