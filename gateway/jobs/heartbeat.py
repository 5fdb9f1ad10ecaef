"""One heartbeat for every job run in this process: it renews their leases while they run.

A task per run cost each open answer stream a task and its frame for nothing but a sleep. One
loop wakes every third of the lease (on the injected clock) and renews each lease at least a sixth
of the lease old: a run's first renewal comes between a sixth and half of its lease after its claim
(before: a third), the next ones every third, as before. A run shorter than that is never renewed
(as before, for runs shorter than a third). A renewal the store refuses, or none getting through
before the lease's own deadline, marks the lease lost, which cancels its run.
The loop runs only while some run holds a lease here.
"""

from __future__ import annotations

import asyncio

from gateway.clock import Clock
from gateway.jobs.lease import JobLease

__all__ = ["Heartbeat"]

_BATCH = 64  # renewals sent together (the store groups concurrent writes); bounds the tasks a beat adds


class Heartbeat:
    """Renews the leases `add`ed until they are `discard`ed; `every` seconds between beats."""

    __slots__ = ("_clock", "_every", "_leases", "_task")

    def __init__(self, clock: Clock, every: float) -> None:
        self._clock = clock
        self._every = every
        self._leases: dict[JobLease, None] = {}  # insertion-ordered: the oldest runs renewed first
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._leases)

    def add(self, lease: JobLease) -> None:
        self._leases[lease] = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._beat(), name="job-heartbeat")

    def discard(self, lease: JobLease) -> None:
        self._leases.pop(lease, None)
        if not self._leases and self._task is not None:
            self._task.cancel()  # nothing left to renew: no task waits on (and outlives) an empty set
            self._task = None

    async def _beat(self) -> None:
        while True:
            # `idle`, not `sleep`: a fake clock wakes the heartbeat only once the test moved its time
            # on; sleeping would push fake time forward by itself, racing every lease in the test.
            await self._clock.idle(self._every)
            now = self._clock.monotonic()
            due = [lease for lease in self._leases if now - lease.renewed_at >= self._every / 2]
            for start in range(0, len(due), _BATCH):
                await asyncio.gather(*(self._renew(lease) for lease in due[start : start + _BATCH]))

    async def _renew(self, lease: JobLease) -> None:
        if lease not in self._leases:
            return  # the run ended meanwhile
        await lease.keep()
        if lease.lost:
            self._leases.pop(lease, None)
