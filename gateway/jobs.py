"""The durable job queue as the gateway uses it: enqueue, and workers in every process that run jobs.

A job is claimed with a lease that its worker keeps extending while the handler runs. A process
that dies stops extending; once the lease runs out any other process claims the job again, so
handlers must make their side effects idempotent (keyed). A handler that fails is retried with
backoff until `max_attempts`, then dead-lettered; dead jobs can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.plugin import JobError, RetryJob
from gateway.storage.base import Job, Store

__all__ = ["Emit", "JobHandlerFn", "JobQueue", "JobRun", "JobWorkers", "job_backoff"]

logger = logging.getLogger(__name__)

PURGE_EVERY = 3600.0  # seconds between purges of finished jobs (jittered, so replicas spread out)

Emit = Callable[[dict[str, Any]], None]
JobHandlerFn = Callable[[Job, Emit], Awaitable[dict[str, Any] | None]]


def _discard(event: dict[str, Any]) -> None:
    """Progress events of a job nobody is watching go nowhere."""


class JobRun:
    """A job started by `JobWorkers.start`: its progress events while it runs here, then its outcome.

    When the job is already running elsewhere (another replica, or a replayed delivery), there
    are no events to relay and `wait` polls the store until the job ends.
    """

    def __init__(self, job_id: str, store: Store, *, local: bool) -> None:
        self.id = job_id
        self.local = local
        self._store = store
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._finished = asyncio.Event()
        if not local:
            self._events.put_nowait(None)

    def emit(self, event: dict[str, Any]) -> None:
        self._events.put_nowait(event)

    def finish(self) -> None:
        self._finished.set()
        self._events.put_nowait(None)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Progress events as the handler emits them; ends when the job stops running here."""
        while (event := await self._events.get()) is not None:
            yield event

    async def wait(self, *, timeout: float, poll: float = 0.2) -> Job | None:
        """The job once done or dead (None if it isn't by `timeout`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.local:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), timeout)
        while True:
            job = await self._store.job_get(self.id)
            if job is None or job.state in ("done", "dead") or loop.time() >= deadline:
                return job if job is not None and job.state in ("done", "dead") else None
            await asyncio.sleep(poll)


def job_backoff(attempt: int, rand: float) -> float:
    """Seconds before retry number `attempt` (1-based): 2, 4, 8 … capped at 10 min, with ±50 % jitter."""
    base = min(600.0, 2.0 ** max(1, attempt))
    return base * (0.5 + rand)


class JobQueue:
    """Enqueues jobs and wakes this process's workers at once (others find them by polling)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        # One token per job enqueued here: each wakes exactly one idle worker (an Event would
        # wake them all, and every one would run a claim for the same job).
        self._wake: asyncio.Queue[None] = asyncio.Queue(maxsize=1024)

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        endpoint_id: str | None = None,
        delay: float = 0.0,
        max_attempts: int = 8,
    ) -> Job:
        """Store the job durably; with `key`, an existing job of that key is returned instead."""
        job, _ = await self.submit(
            kind, payload, key=key, endpoint_id=endpoint_id, delay=delay, max_attempts=max_attempts
        )
        return job

    async def submit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        endpoint_id: str | None = None,
        delay: float = 0.0,
        max_attempts: int = 8,
    ) -> tuple[Job, bool]:
        """Like `enqueue`, and also tells whether the job is new (False: `key` named an existing one)."""
        now = self._clock.time()
        job = Job(
            id="job_" + secrets.token_hex(10),
            kind=kind,
            payload=payload,
            key=key,
            endpoint_id=endpoint_id,
            max_attempts=max(1, max_attempts),
            due_at=now + max(0.0, delay),
            created_at=now,
            updated_at=now,
        )
        stored, created = await self._store.job_enqueue(job)
        if created and delay <= 0:
            self.notify()
        return stored, created

    async def enqueue_plugin_job(
        self,
        endpoint_id: str,
        name: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        delay: float = 0.0,
        max_attempts: int = 8,
    ) -> tuple[Job, bool]:
        return await self.submit(
            "plugin",
            {"handler": name, "data": payload},
            key=None if key is None else self.plugin_key(endpoint_id, name, key),
            endpoint_id=endpoint_id,
            delay=delay,
            max_attempts=max_attempts,
        )

    @staticmethod
    def plugin_key(endpoint_id: str, name: str, key: str) -> str:
        """The idempotency key of a plugin job: the plugin's key scoped to its endpoint and handler."""
        return f"plugin:{endpoint_id}:{name}:{key}"

    def notify(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._wake.put_nowait(None)

    async def wait(self, timeout: float) -> None:
        """Sleep until a job is enqueued here (waking one waiter per job) or `timeout` passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.get(), timeout)


class JobWorkers:
    """`concurrency` workers claiming and running jobs, each with a heartbeat on its lease."""

    def __init__(
        self,
        *,
        store: Store,
        queue: JobQueue,
        clock: Clock,
        handlers: Mapping[str, JobHandlerFn],
        metrics: Metrics,
        concurrency: int = 8,
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
        self._lease = lease
        self._poll = poll_interval
        self._retention = retention
        self._rand = rand
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._local: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                for index in range(self._concurrency):
                    group.create_task(self._loop(), name=f"job-worker-{index}")
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
            try:
                purged = await self.purge_once()
                if purged:
                    logger.info("purged %d finished jobs", purged)
            except Exception:
                logger.exception("purging finished jobs failed")
            await asyncio.sleep(PURGE_EVERY * (0.5 + self._rand()))

    async def start(self, job_id: str) -> JobRun:
        """Claim `job_id` and run it in this process now, relaying its progress events.

        Used when a request streams a job's progress to its caller. The job stays durable: if
        this process dies, another claims it when the lease runs out. If the job can't be claimed
        (it runs elsewhere or has ended), the run only reports the outcome.
        """
        job = await self._store.job_claim(self.owner, self._clock.time(), self._lease, job_id=job_id)
        if job is None:
            return JobRun(job_id, self._store, local=False)
        run = JobRun(job_id, self._store, local=True)
        task = asyncio.get_running_loop().create_task(self.run_job(job, run.emit), name=f"job-{job_id}")
        self._local.add(task)
        task.add_done_callback(self._local.discard)
        task.add_done_callback(lambda _: run.finish())
        return run

    async def cancel_local(self) -> None:
        """Hand jobs started with `start` back to the queue (at shutdown)."""
        tasks = list(self._local)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                job = await self._store.job_claim(self.owner, self._clock.time(), self._lease)
            except Exception:  # the store may be briefly unreachable: log and keep the worker alive
                logger.exception("claiming a job failed")
                await self._clock.sleep(self._poll)
                continue
            if job is None:
                # Idle workers poll together about once per interval (jobs enqueued by other
                # processes, retries coming due), not once each: polls are store writes.
                await self._queue.wait(self._poll * self._concurrency * (0.5 + self._rand()))
                continue
            await self.run_job(job)

    async def run_job(self, job: Job, emit: Emit = _discard) -> None:
        """Run one claimed job to an outcome: done, retried or dead. Never raises but `CancelledError`."""
        try:
            await self._run_job(job, emit)
        except Exception:
            # The store failed while recording the outcome: the job runs again once its lease
            # expires. Raising would end the worker loop (and with it every worker of the group).
            logger.exception("recording the outcome of job %s (%s) failed", job.id, job.kind)

    async def _run_job(self, job: Job, emit: Emit) -> None:
        handler = self._handlers.get(job.kind)
        heartbeat = asyncio.create_task(self._heartbeat(job), name=f"lease-{job.id}")
        outcome = "done"
        try:
            if handler is None:
                raise JobError(f"no handler for jobs of kind {job.kind!r}")
            result = await handler(job, emit)
            await self._store.job_complete(job.id, self.owner, result)
        except asyncio.CancelledError:
            # Shutting down: hand the job back now rather than after its lease runs out.
            outcome = "interrupted"
            try:
                await asyncio.shield(self._store.job_retry(job.id, self.owner, self._clock.time(), "interrupted"))
            except Exception:  # the cancellation must go on; the lease runs out instead
                logger.exception("handing job %s back failed", job.id)
            raise
        except RetryJob as exc:
            outcome = await self._retry_or_die(job, str(exc), exc.after)
        except JobError as exc:
            outcome = "dead"
            await self._store.job_dead(job.id, self.owner, str(exc))
        except Exception as exc:
            logger.exception("job %s (%s) failed on attempt %d", job.id, job.kind, job.attempts)
            outcome = await self._retry_or_die(job, f"{exc.__class__.__name__}: {exc}"[:500], None)
        finally:
            heartbeat.cancel()
            self._metrics.jobs.inc(job.kind, outcome)

    async def _retry_or_die(self, job: Job, error: str, after: float | None) -> str:
        if job.attempts >= job.max_attempts:
            await self._store.job_dead(job.id, self.owner, error)
            return "dead"
        delay = job_backoff(job.attempts, self._rand()) if after is None else max(0.0, after)
        await self._store.job_retry(job.id, self.owner, self._clock.time() + delay, error)
        return "retry"

    async def _heartbeat(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                if not await self._store.job_extend(job.id, self.owner, self._clock.time() + self._lease):
                    logger.warning("lost the lease of job %s", job.id)
                    return
            except Exception:
                logger.exception("extending the lease of job %s failed", job.id)
