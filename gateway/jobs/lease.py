"""A run's hold on its job: the lease, the run's fencing token, and the fence of its writes.

A job is claimed with a lease that the worker renews while the handler runs. A process frozen
for longer than the lease (a GC pause, SIGSTOP, a VM migration) comes back to find its job taken
over by another replica, and must not write anything more: not to the platform, not to the
records of what it posted. So every run carries:

- a fencing token: the job's `attempts` when claimed, raised atomically by each claim. Every store
  update of the run (renewal, outcome, `kv_set_fenced` records) is conditional on it, in the same
  atomic write, so a stale run's write is refused by the store;
- a local deadline on the injected clock (`LeaseDeadline`, from gateway/storage/lock.py):
  when the last renewal runs out (less a margin for clock skew between replicas). After a freeze
  the run sees the deadline passed before any network round trip, and renews (only possible
  while no other run claimed the job) or stops.

`check()` is the fence in front of every platform write; `lose()` marks the lease lost and, through
`on_lost`, cancels the handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.clock import Clock
from gateway.plugin import LeaseLost
from gateway.storage.base import Store
from gateway.storage.lock import LeaseDeadline

__all__ = ["JobLease"]

logger = logging.getLogger(__name__)


class JobLease:
    """Run `attempt` of job `job_id`, held by `owner` for `lease_s` seconds from `since` (monotonic)."""

    __slots__ = (
        "_attempt",
        "_clock",
        "_deadline",
        "_lease_s",
        "_lost",
        "_store",
        "job_id",
        "on_lost",
        "owner",
    )

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        job_id: str,
        owner: str,
        attempt: int,
        lease_s: float,
        since: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self.job_id = job_id
        self.owner = owner
        self._attempt = attempt
        self._lease_s = lease_s
        self._deadline = LeaseDeadline(clock, lease_s, since=since)
        self._lost = False
        self.on_lost: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"JobLease(job_id={self.job_id!r}, attempt={self._attempt}, lost={self._lost})"

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def renewed_at(self) -> float:
        """Monotonic: when the claim, or the latest renewal that went through, was sent."""
        return self._deadline.renewed_at

    @property
    def lost(self) -> bool:
        return self._lost

    def held(self) -> bool:
        return not self._lost and not self._deadline.passed()

    def lose(self, why: str) -> LeaseLost:
        """Mark the lease lost (once: logs and calls `on_lost`); the error to raise."""
        if not self._lost:
            self._lost = True
            logger.warning("job %s: attempt %d lost its lease (%s); the run stops", self.job_id, self._attempt, why)
            if self.on_lost is not None:
                self.on_lost()
        return LeaseLost(f"job {self.job_id}: attempt {self._attempt} no longer holds its lease")

    async def renew(self) -> bool:
        """Extend the lease in the store, only while this run holds it; False when it does not."""
        if self._lost:
            return False
        started = self._clock.monotonic()
        renewed = await self._store.job_extend(
            self.job_id, self.owner, self._clock.time() + self._lease_s, attempt=self._attempt
        )
        if renewed:
            self._deadline.renewed(started)
        return renewed

    async def keep(self) -> None:
        """A heartbeat's renewal. The lease is lost when the store refuses it, or when none got
        through before the deadline (another run may hold the job now); a failed one is logged."""
        try:
            if not await self.renew():
                self.lose("another run took the job over")
                return
        except Exception:
            logger.exception("extending the lease of job %s failed", self.job_id)
        if not self.held():
            self.lose("it ran out before a renewal got through")

    async def check(self) -> None:
        if self._lost:
            raise self.lose("lost before")
        if not self.held():
            # The deadline passed (the process was frozen, or renewals failed): the renewal tells
            # whether another run took over meanwhile; if none did, this run goes on with a fresh lease.
            if not await self.renew():
                raise self.lose("it ran out and another run took the job")
            return
        job = await self._store.job_get(self.job_id)
        if job is None or (job.state, job.lease_owner, job.attempts) != ("running", self.owner, self._attempt):
            raise self.lose("the store says another run holds the job")
        if not self.held():  # frozen during the read
            raise self.lose("it ran out during the check")

    async def record(self, key: str, value: str, *, ttl: float | None) -> None:
        """Store `key` (a full store key) only while this run holds the job; `LeaseLost` otherwise."""
        if not self.held() and not await self.renew():
            raise self.lose("it ran out before a record was written")
        stored = await self._store.kv_set_fenced(
            key, value, job_id=self.job_id, owner=self.owner, attempt=self._attempt, ttl=ttl
        )
        if not stored:
            raise self.lose("the store refused a record of this run")
