"""The durable job queue as the gateway uses it: enqueue, and workers in every process that run jobs.

A job is claimed with a lease that its worker keeps extending while the handler runs. A process
that dies stops extending; once the lease runs out any other process claims the job again, so
handlers must make their side effects idempotent (keyed). A handler that fails is retried with
backoff until `max_attempts`, then dead-lettered; dead jobs can be replayed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.plugin import JobError, RetryJob
from gateway.storage.base import Job, Store

__all__ = ["JobHandlerFn", "JobQueue", "JobWorkers", "job_backoff"]

logger = logging.getLogger(__name__)

JobHandlerFn = Callable[[Job], Awaitable[dict[str, Any] | None]]


def job_backoff(attempt: int, rand: float) -> float:
    """Seconds before retry number `attempt` (1-based): 2, 4, 8 … capped at 10 min, with ±50 % jitter."""
    base = min(600.0, 2.0 ** max(1, attempt))
    return base * (0.5 + rand)


class JobQueue:
    """Enqueues jobs and wakes this process's workers at once (others find them by polling)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._wake = asyncio.Event()

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
        if created:
            self.notify()
        return stored

    async def enqueue_plugin_job(
        self,
        endpoint_id: str,
        name: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        delay: float = 0.0,
        max_attempts: int = 8,
    ) -> Job:
        return await self.enqueue(
            "plugin",
            {"handler": name, "data": payload},
            key=None if key is None else f"plugin:{endpoint_id}:{name}:{key}",
            endpoint_id=endpoint_id,
            delay=delay,
            max_attempts=max_attempts,
        )

    def notify(self) -> None:
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        """Sleep until something is enqueued here or `timeout` passes."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()


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
        self._rand = rand
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as group:
            for index in range(self._concurrency):
                group.create_task(self._loop(), name=f"job-worker-{index}")

    async def _loop(self) -> None:
        while True:
            try:
                job = await self._store.job_claim(self.owner, self._clock.time(), self._lease)
            except Exception:  # the store may be briefly unreachable: log and keep the worker alive
                logger.exception("claiming a job failed")
                await self._clock.sleep(self._poll)
                continue
            if job is None:
                await self._queue.wait(self._poll)
                continue
            await self.run_job(job)

    async def run_job(self, job: Job) -> None:
        """Run one claimed job to an outcome: done, retried or dead."""
        handler = self._handlers.get(job.kind)
        heartbeat = asyncio.create_task(self._heartbeat(job), name=f"lease-{job.id}")
        outcome = "done"
        try:
            if handler is None:
                raise JobError(f"no handler for jobs of kind {job.kind!r}")
            result = await handler(job)
            await self._store.job_complete(job.id, self.owner, result)
        except asyncio.CancelledError:
            # Shutting down: hand the job back now rather than after its lease runs out.
            outcome = "interrupted"
            await asyncio.shield(self._store.job_retry(job.id, self.owner, self._clock.time(), "interrupted"))
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
