"""`ctx.jobs` in memory: every enqueue is recorded, and a test runs the jobs when it wants to."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import Clock
from gateway.plugin import (
    Context,
    JobError,
    JobInfo,
    JobStatus,
    LeaseLost,
    NotFound,
    Overloaded,
    Plugin,
    RetryJob,
)

__all__ = ["FakeJobRun", "FakeJobs", "FakeLease", "RecordedJob"]


class FakeLease:
    """A run's lease that holds until the test calls `lose()` (another run took the job over):
    then `job.fence()` and fenced `storage.set` raise `LeaseLost`."""

    def __init__(self, attempt: int) -> None:
        self.attempt = attempt
        self.lost = False

    def lose(self) -> None:
        self.lost = True

    def held(self) -> bool:
        return not self.lost

    async def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"attempt {self.attempt} lost its lease")


@dataclass
class RecordedJob:
    """A job as enqueued (`name`, `payload`, `key`, `delay`, `max_attempts`) and as run so far.

    `state` is queued, running, done or dead; `attempts` counts runs; `result` is what the
    handler returned (a dict, like the gateway keeps); `error` why it was retried or died, and
    `exception` the exception itself; `lease` that of the last run (`lease.lose()` in a test).
    """

    id: str
    name: str
    payload: dict[str, Any]
    key: str | None
    delay: float
    max_attempts: int
    created_at: float
    state: str = "queued"
    due_at: float = 0.0
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    exception: BaseException | None = None
    updated_at: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    lease: FakeLease | None = None

    def status(self) -> JobStatus:
        return JobStatus(
            self.id, self.name, self.state, self.attempts, self.result, self.error, self.created_at, self.updated_at
        )


class FakeJobRun:
    """The `JobRun` of `FakeJobs.start`: the handler runs in a task of this process at once."""

    local = True

    def __init__(self, job: RecordedJob, events: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.id = job.id
        self._job = job
        self._events = events
        self._task: asyncio.Future[RecordedJob] | None = None

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The handler's progress events; ends when the run does."""
        while (event := await self._events.get()) is not None:
            yield event

    async def wait(self, *, timeout: float, poll: float = 0.2) -> RecordedJob | None:
        """The job once done or dead; None if its run is not over within `timeout` (real) seconds."""
        if self._task is not None:
            # Waiting on the run itself (not pacing anything), so real time like the gateway's StartedJob.
            await asyncio.wait({self._task}, timeout=timeout)
        return self._job if self._job.state in ("done", "dead") else None


class FakeJobs:
    """The plugin's job queue for one `FakeContext`.

    `enqueued` lists every job in order of enqueueing; `enqueue` with a known `key` returns the
    first job's id, like the gateway. Nothing runs until the test says so: `run(job_id)` runs a
    job once, `run_all()` runs queued jobs (and those they enqueue or retry) until none is left.
    `start` runs the job at once in a task, as the gateway does for a caller watching it.
    """

    def __init__(self, plugin: Plugin, clock: Clock, context: Callable[[], Context]) -> None:
        self._plugin = plugin
        self._clock = clock
        self._context = context
        self._ids = itertools.count(1)
        self._by_key: dict[str, str] = {}
        self.jobs: dict[str, RecordedJob] = {}

    @property
    def enqueued(self) -> list[RecordedJob]:
        return list(self.jobs.values())

    def named(self, name: str) -> list[RecordedJob]:
        return [job for job in self.jobs.values() if job.name == name]

    def _new(
        self, name: str, payload: dict[str, Any], key: str | None, delay: float, max_attempts: int
    ) -> tuple[RecordedJob, bool]:
        if name not in self._plugin.jobs:
            raise NotFound(f"plugin {self._plugin.name!r} has no job handler {name!r}")
        if key is not None and key in self._by_key:
            return self.jobs[self._by_key[key]], False
        now = self._clock.time()
        job = RecordedJob(
            id=f"job_{next(self._ids)}",
            name=name,
            payload=dict(payload),
            key=key,
            delay=delay,
            max_attempts=max_attempts,
            created_at=now,
            due_at=now + delay,
            updated_at=now,
        )
        self.jobs[job.id] = job
        if key is not None:
            self._by_key[key] = job.id
        return job, True

    # -- the `Jobs` protocol --------------------------------------------------------------------

    async def enqueue(
        self, name: str, payload: dict[str, Any], *, key: str | None = None, delay: float = 0.0, max_attempts: int = 8
    ) -> str:
        job, _ = self._new(name, payload, key, delay, max_attempts)
        return job.id

    async def start(
        self, name: str, payload: dict[str, Any], *, key: str | None = None, max_attempts: int = 8
    ) -> tuple[FakeJobRun, bool]:
        job, created = self._new(name, payload, key, 0.0, max_attempts)
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        run = FakeJobRun(job, events)
        if job.state != "queued":  # a known job, running or over: its outcome, no events here
            events.put_nowait(None)
            return run, created

        async def watched() -> RecordedJob:
            try:
                return await self._run(job, events.put_nowait)
            finally:
                events.put_nowait(None)

        run._task = asyncio.ensure_future(watched())
        return run, created

    async def get(self, job_id: str) -> JobStatus | None:
        job = self.jobs.get(job_id)
        return None if job is None else job.status()

    # -- running ----------------------------------------------------------------------------------

    async def run(self, job_id: str) -> RecordedJob:
        """Run the job once, now, whatever its due time; its state tells the outcome."""
        job = self.jobs[job_id]
        if job.state != "queued":
            raise AssertionError(f"{job.id} is {job.state}, not queued")
        return await self._run(job, lambda event: None)

    async def run_all(self, *, limit: int = 100) -> list[RecordedJob]:
        """Run queued jobs in order of due time until none is queued; the runs, in order.

        Retries run again at once (their delay is not waited out); more than `limit` runs fail
        the test (a job that never ends).
        """
        runs: list[RecordedJob] = []
        while queued := [job for job in self.jobs.values() if job.state == "queued"]:
            if len(runs) >= limit:
                raise AssertionError(f"jobs still queued after {limit} runs: {[j.id for j in queued]}")
            job = min(queued, key=lambda j: j.due_at)
            runs.append(await self._run(job, lambda event: None))
        return runs

    async def _run(self, job: RecordedJob, emit: Callable[[dict[str, Any]], None]) -> RecordedJob:
        job.state = "running"
        job.attempts += 1
        job.lease = lease = FakeLease(job.attempts)

        def relay(event: dict[str, Any]) -> None:
            job.events.append(event)
            emit(event)

        info = JobInfo(job.id, job.name, dict(job.payload), job.attempts, job.key, relay, lease)
        try:
            try:
                result = await self._plugin.jobs[job.name](info, self._context())
            except Overloaded as exc:  # the gateway runs it again later, never fails it
                raise RetryJob(exc.message, after=exc.retry_after) from None
        except LeaseLost:
            job.state = "queued"  # another run holds it: nothing is recorded for this one
            return job
        except RetryJob as exc:
            self._retry_or_die(job, exc, str(exc), exc.after)
        except JobError as exc:
            self._end(job, "dead", error=str(exc), exception=exc)
        except Exception as exc:
            self._retry_or_die(job, exc, f"{exc.__class__.__name__}: {exc}"[:500], None)
        else:
            self._end(job, "done", result=result if isinstance(result, dict) else None)
        return job

    def _retry_or_die(self, job: RecordedJob, exc: BaseException, error: str, after: float | None) -> None:
        if job.attempts >= job.max_attempts:
            self._end(job, "dead", error=error, exception=exc)
            return
        self._end(job, "queued", error=error, exception=exc)
        job.due_at = self._clock.time() + (after or 0.0)

    def _end(
        self,
        job: RecordedJob,
        state: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        job.state, job.result, job.error, job.exception = state, result, error, exception
        job.updated_at = self._clock.time()
