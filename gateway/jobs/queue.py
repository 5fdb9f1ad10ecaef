"""The durable job queue: jobs go into the store, and this process's idle workers wake at once.

Workers of other processes find new jobs by polling (gateway/jobs/workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Collection
from typing import Any

from gateway.clock import Clock
from gateway.jobs.plugin_job import PLUGIN_JOB, PluginJobPayload, plugin_job_key
from gateway.security.crypto import SecretBox
from gateway.security.sealed import seal
from gateway.storage.base import Job, Store

__all__ = ["JobIds", "JobQueue"]


class JobQueue:
    """Enqueues jobs and wakes this process's workers at once (others find them by polling).

    With a `box`, payload fields named as secret are stored encrypted (see gateway/security/sealed.py).
    """

    def __init__(self, store: Store, clock: Clock, box: SecretBox | None = None) -> None:
        self._store = store
        self._clock = clock
        self._box = box
        self._ids = JobIds()
        # One token per job enqueued here: each wakes exactly one idle worker (an Event would
        # wake them all, and every one would run a claim for the same job). Workers of one kind
        # only wait on a queue of their own (None: the general workers).
        self._wake: dict[str | None, asyncio.Queue[None]] = {None: asyncio.Queue(maxsize=1024)}

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        endpoint_id: str | None = None,
        delay: float = 0.0,
        max_attempts: int = 8,
        sealed: Collection[str] = (),
    ) -> Job:
        """Store the job durably; with `key`, an existing job of that key is returned instead."""
        job, _ = await self.submit(
            kind, payload, key=key, endpoint_id=endpoint_id, delay=delay, max_attempts=max_attempts, sealed=sealed
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
        sealed: Collection[str] = (),
    ) -> tuple[Job, bool]:
        """Like `enqueue`, and also tells whether the job is new (False: `key` named an existing one).

        `sealed` names payload fields (of `payload["data"]` for plugin jobs) to store encrypted.
        """
        now = self._clock.time()
        job_id = self._ids(now)
        if sealed:
            payload = self._seal(job_id, kind, payload, sealed)
        job = Job(
            id=job_id,
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
            self.notify(kind)
        return stored, created

    def _seal(self, job_id: str, kind: str, payload: dict[str, Any], fields: Collection[str]) -> dict[str, Any]:
        if self._box is None:
            raise ValueError("secret job fields need a queue with a SecretBox")
        if kind == PLUGIN_JOB:
            return {**payload, "data": seal(self._box, job_id, payload.get("data") or {}, fields)}
        return seal(self._box, job_id, payload, fields)

    async def enqueue_plugin_job(
        self,
        endpoint_id: str,
        name: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        delay: float = 0.0,
        max_attempts: int = 8,
        sealed: Collection[str] = (),
    ) -> tuple[Job, bool]:
        """Enqueue a job of the plugin's handler `name`; `key` (the plugin's own) makes it idempotent."""
        return await self.submit(
            PLUGIN_JOB,
            PluginJobPayload(name, payload, key).dump(),
            key=None if key is None else plugin_job_key(endpoint_id, name, key),
            endpoint_id=endpoint_id,
            delay=delay,
            max_attempts=max_attempts,
            sealed=sealed,
        )

    def notify(self, kind: str | None = None) -> None:
        """Wake one general worker, and one worker of `kind` if it has workers of its own."""
        for name in (None,) if kind is None else (None, kind):
            if (waiting := self._wake.get(name)) is not None and not waiting.full():
                waiting.put_nowait(None)

    async def wait(self, timeout: float, *, kind: str | None = None, every: bool = False) -> None:
        """Sleep until a job (of `kind`, if given) is enqueued here, waking one waiter per job, or
        `timeout` passes. With `every`, the waiter takes the tokens of every job enqueued so far
        (one that claims them all in one call)."""
        waiting = self._wake.setdefault(kind, asyncio.Queue(maxsize=1024))
        # `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` drops a cancellation that
        # arrives as the token does, and a worker told to stop would keep running.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await waiting.get()
        while every and not waiting.empty():
            waiting.get_nowait()


_ID_BYTES = 10
_IDS_PER_DRAW = 256
_MS_MASK = (1 << 44) - 1  # 11 hex digits of milliseconds: until the year 2527


class JobIds:
    """Job ids: `job_`, the time they are made at in milliseconds (11 hex digits), then 20 random
    hex digits from the OS's random source, drawn a few hundred at a time.

    The time first makes ids of one process ascend: a new job's id lands at the end of the store's
    id index (SQLite's B-tree) instead of at a random leaf, so a batch of new jobs dirties one or two
    of its pages, not one per job, and the commit writes and syncs that much less. The random part
    alone keeps ids unguessable (80 bits). One `os.urandom` call per id was a measurable share of
    each ack; the bytes are as random when drawn in bulk, and each is used for one id only.
    """

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def __call__(self, now: float) -> str:
        """A new id made at `now` (seconds since the epoch, the clock's `time()`)."""
        at = self._at
        if at >= len(self._hex):
            self._hex, at = secrets.token_hex(_ID_BYTES * _IDS_PER_DRAW), 0
        self._at = at + 2 * _ID_BYTES
        return f"job_{int(now * 1000) & _MS_MASK:011x}{self._hex[at : at + 2 * _ID_BYTES]}"
