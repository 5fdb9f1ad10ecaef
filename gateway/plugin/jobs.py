"""Jobs as their handlers see them: the run (`JobInfo`) and its lease, a job's status from outside,
and a run started to watch. The signals a handler raises (`RetryJob`, `JobError`) are exceptions
(`gateway.exceptions`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["JobInfo", "JobRun", "JobStatus", "Lease", "LeaseLost"]


def _no_progress(event: dict[str, Any]) -> None:
    """Where progress goes when nobody is watching the job."""


class LeaseLost(asyncio.CancelledError):
    """This run of a job lost its lease: another run (another replica, after a freeze) took the job
    over. The run must stop at once and write nothing more. A cancellation, so `except Exception`
    does not swallow it; the worker records nothing for a run that ended with it."""


class Lease(Protocol):
    """A run's hold on its job. `attempt` (the job's claim count) is the run's fencing token."""

    @property
    def attempt(self) -> int: ...

    def held(self) -> bool:
        """False once the run knows, or its own clock says, that the lease is gone (no I/O)."""
        ...

    async def check(self) -> None:
        """Raise `LeaseLost` unless this run still holds its job (its clock, then the store)."""
        ...


class _Unfenced:
    """The lease of a `JobInfo` made outside the job workers (a direct call, a test): always held."""

    attempt = 0

    def held(self) -> bool:
        return True

    async def check(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as its handler sees it. `emit` relays progress to a caller watching the job live
    (see `Jobs.start`); it does nothing when the job runs unobserved. `lease` is this run's hold
    on the job: every write to the outside goes after `await job.fence()`, and records of what
    was written go through `ctx.storage.set(..., fence=job.lease)`."""

    id: str
    name: str
    payload: dict[str, Any]
    attempt: int
    key: str | None
    emit: Callable[[dict[str, Any]], None] = _no_progress
    lease: Lease = field(default_factory=_Unfenced)

    async def fence(self) -> None:
        """Raise `LeaseLost` (stopping the run) unless this run still holds the job's lease."""
        await self.lease.check()


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job of this endpoint as seen from outside: state is queued, running, done or dead."""

    id: str
    name: str
    state: str
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float


class JobRun(Protocol):
    """A job started with `Jobs.start`."""

    id: str
    local: bool

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """The handler's progress events while it runs in this process; ends with the run."""
        ...

    async def wait(self, *, timeout: float, poll: float = 0.2) -> Any:
        """Wait until the job is done or dead (None after `timeout`)."""
        ...
