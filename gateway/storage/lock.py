"""The one lock across replicas: a lease in the store, held by one owner, released only by it.

A `LeaseLock` is a store key holding its owner's token with a TTL. It is taken with
`kv_set_if_absent`, renewed with `kv_expire_if_equals` and released with `kv_delete_if_equals`,
each atomic on every backend (the storage contract), so an owner never renews or releases a lock
another one holds. A holder that dies stops renewing, and `ttl` seconds after its last renewal
the lock is free again.

Its users: the endpoint-change lock (gateway/records/endpoints.py), the conversation lock, which puts
arrival-order tickets on top (gateway/dify/conversations.py), the bot's connection lease
(bots/lease.py), and plugins, as `ctx.storage.lock(name, ttl)` (gateway/host/context.py). A job run's
lease is a different thing, fenced by the attempt number in the job's own record
(gateway/jobs/lease.py); it shares `new_owner` and `LeaseDeadline` from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Protocol

from gateway.clock import Clock
from gateway.exceptions import LockBusy

__all__ = ["LeaseDeadline", "LeaseLock", "LockStore", "new_owner"]

logger = logging.getLogger(__name__)


class LockStore(Protocol):
    """The four atomic key operations a lock needs (every `Store` has them)."""

    async def kv_get(self, key: str) -> str | None: ...
    async def kv_set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool: ...
    async def kv_expire_if_equals(self, key: str, value: str, ttl: float) -> bool: ...
    async def kv_delete_if_equals(self, key: str, value: str) -> bool: ...


SKEW_MARGIN = 0.1  # of the TTL: a replica whose clock runs this far ahead may take over early


def new_owner() -> str:
    """A holder name unique to this process and call: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaseDeadline:
    """When a lease runs out by this process's own clock: `ttl` after the last renewal was sent,
    less a margin for clock skew between replicas. After a freeze (a GC pause, SIGSTOP) the
    holder sees it passed before any round trip to the store."""

    def __init__(self, clock: Clock, ttl: float, *, since: float | None = None) -> None:
        self._clock = clock
        self._ttl = ttl
        self._margin = ttl * SKEW_MARGIN
        # monotonic: when the claim, or the latest renewal that went through, was sent
        self.renewed_at = clock.monotonic() if since is None else since

    def renewed(self, started: float) -> None:
        """A renewal sent at `started` (monotonic) went through."""
        self.renewed_at = max(self.renewed_at, started)

    def passed(self) -> bool:
        return self._clock.monotonic() >= self.renewed_at + self._ttl - self._margin


class LeaseLock:
    """The lock named `key`, held (when it is) under `owner` for `ttl` seconds after each renewal.

    Try once with `acquire`; or wait for it, hold it and let go with `async with lock.held(clock)`.
    """

    def __init__(self, store: LockStore, key: str, *, ttl: float, owner: str | None = None) -> None:
        if ttl <= 0:
            raise ValueError("the lock's TTL must be positive")
        self.store = store
        self.key = key
        self.ttl = ttl
        self.owner = owner or new_owner()
        self.lost = False  # set by `held` when a renewal found the lock gone

    def __repr__(self) -> str:
        return f"LeaseLock(key={self.key!r}, ttl={self.ttl:g})"

    async def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this owner now holds it."""
        return await self.store.kv_set_if_absent(self.key, self.owner, ttl=self.ttl)

    async def renew(self) -> bool:
        """Hold the lock `ttl` seconds more; False when this owner no longer holds it."""
        return await self.store.kv_expire_if_equals(self.key, self.owner, self.ttl)

    async def release(self) -> bool:
        """Let the lock go, only if this owner still holds it; True when it did."""
        return await self.store.kv_delete_if_equals(self.key, self.owner)

    async def holder(self) -> str | None:
        """Who holds the lock now, if anyone."""
        return await self.store.kv_get(self.key)

    async def wait(self, clock: Clock, *, timeout: float, poll: float = 0.05) -> bool:
        """Try to take the lock until `timeout` seconds passed on `clock`; True when taken."""
        deadline = clock.monotonic() + timeout
        while not await self.acquire():
            if clock.monotonic() >= deadline:
                return False
            await clock.sleep(poll)
        return True

    @contextlib.asynccontextmanager
    async def held(self, clock: Clock, *, wait: float = 0.0, poll: float = 0.05) -> AsyncIterator[LeaseLock]:
        """Wait up to `wait` seconds for the lock (`LockBusy` if it stays taken), then hold it
        while the block runs, as `kept` does."""
        if not await self.wait(clock, timeout=wait, poll=poll):
            raise LockBusy("someone else holds this lock; try again later")
        async with self.kept(clock):
            yield self

    @contextlib.asynccontextmanager
    async def kept(self, clock: Clock) -> AsyncIterator[LeaseLock]:
        """Keep the lock this owner just took while the block runs (renewed every `ttl / 3`), then
        release it. If a renewal finds the lock gone (this process froze past the TTL and another
        took it), `lost` turns True and a warning is logged; the block is not interrupted."""
        self.lost = False
        keeper = asyncio.create_task(self._keep(clock), name=f"lock-{self.key}")
        try:
            yield self
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            try:
                await asyncio.shield(self.release())
            except Exception:  # the TTL frees it instead
                logger.exception("releasing the lock %s failed; it expires in %g s", self.key, self.ttl)

    async def _keep(self, clock: Clock) -> None:
        while True:
            await clock.idle(self.ttl / 3)
            try:
                if not await self.renew():
                    self.lost = True
                    logger.warning("the lock %s was lost while held (taken over after its TTL)", self.key)
                    return
            except Exception:  # the store may be briefly unreachable: the next round tries again
                logger.exception("renewing the lock %s failed", self.key)
