"""The storage contract: one interface, two backends (SQLite embedded, Redis for replicas).

The store holds four kinds of data, all JSON-serialisable:

* documents: small records in named collections (apps, endpoints), read and written whole;
* key-value entries with optional TTL, atomic set-if-absent, compare-and-delete and counters
  (dedup, conversation maps, leases, rate limits, plugin storage);
* capped logs: the last N entries of a named stream, newest first (per-endpoint request log);
* counters: named tables of integer fields, added to once per marker key in one atomic write
  (usage and cost per day and month: exactly-once recording across reruns and replicas);
* a durable job queue with leases: a job claimed by a process that dies is claimed again once
  its lease runs out.

Every backend passes `tests/gateway/storage/test_contract.py`. Times are seconds since the epoch
(floats). The job methods take `now` from the caller's injected clock; TTLs on keys are enforced
by the backend (Redis's own expiry, or the SQLite backend's clock).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Job", "JobState", "Store", "json_dumps", "json_loads_object", "prepare_enqueue", "redact_url"]

JobState = Literal["queued", "running", "done", "dead"]


# -- shared (de)serialisation helpers, used by every backend --------------------------------
# One encoder, built once: json.dumps with options builds a new JSONEncoder on every call, which
# costs more than encoding a small value (and a job write encodes a dozen of them).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_dumps(value: Any) -> str:
    """Compact JSON text; floats keep full precision, NaN and infinities are refused."""
    return _ENCODER.encode(value)


def json_loads_object(text: str | bytes) -> dict[str, Any]:
    """Parse JSON text that must hold an object (documents, log entries, job payloads)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


@dataclass(slots=True)
class Job:
    """A unit of durable background work.

    `key` is an optional idempotency key: enqueuing a second job with the same key returns the
    first one instead. `kind` names the handler that runs it. `attempts` counts claims.
    """

    id: str
    kind: str
    payload: dict[str, Any]
    key: str | None = None
    endpoint_id: str | None = None
    state: JobState = "queued"
    attempts: int = 0
    max_attempts: int = 8
    due_at: float = 0.0
    lease_owner: str | None = None
    lease_until: float | None = None
    last_error: str | None = None
    result: dict[str, Any] | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict deep-copies the payload, measurably on every enqueue.
        # The field names are listed once (_JOB_FIELDS): dataclasses.fields() per call costs as much.
        return {name: getattr(self, name) for name in _JOB_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**{k: v for k, v in data.items() if k in _JOB_FIELD_SET})


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_JOB_FIELD_SET = frozenset(_JOB_FIELDS)


def redact_url(url: str) -> str:
    """`url` with any credentials replaced by `***`, safe for messages and logs."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")  # the last "@": a raw "@" inside a password must not leak its tail
    if not sep or at == -1:
        return url
    user, colon, _ = rest[:at].partition(":")
    # Without a colon some clients read the lone user part as a password, so hide it too.
    userinfo = f"{user}:***" if colon else "***"
    return f"{scheme}://{userinfo}@{rest[at + 1 :]}"


def prepare_enqueue(job: Job, now: float) -> Job:
    """The copy of `job` a backend stores on enqueue: queued, no lease, and `created_at` /
    `updated_at` defaulting to `now` when the caller left them at 0."""
    created = job.created_at or now
    # Built field by field: dataclasses.replace walks fields() on every call, on every ack's path.
    return Job(
        id=job.id,
        kind=job.kind,
        payload=job.payload,
        key=job.key,
        endpoint_id=job.endpoint_id,
        state="queued",
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        due_at=job.due_at,
        lease_owner=None,
        lease_until=None,
        last_error=job.last_error,
        result=job.result,
        created_at=created,
        updated_at=job.updated_at or created,
        meta=job.meta,
    )


class Store(Protocol):
    """What every storage backend provides. All methods are coroutine-safe."""

    # -- lifecycle -------------------------------------------------------------------------
    async def ping(self) -> None:
        """Raise `StoreError` when the backend cannot be reached."""

    async def aclose(self) -> None:
        """Release connections; the store is unusable afterwards."""

    # -- documents -------------------------------------------------------------------------
    async def doc_get(self, collection: str, key: str) -> dict[str, Any] | None:
        """The document stored under `key`, or None."""

    async def doc_put(self, collection: str, key: str, doc: dict[str, Any]) -> None:
        """Create or replace the document under `key`."""

    async def doc_create(self, collection: str, key: str, doc: dict[str, Any]) -> bool:
        """Store `doc` only if `key` is free; True when it was stored."""

    async def doc_delete(self, collection: str, key: str) -> bool:
        """Delete the document; True when it existed."""

    async def doc_list(self, collection: str) -> list[dict[str, Any]]:
        """Every document of the collection, ordered by key."""

    # -- key-value -------------------------------------------------------------------------
    async def kv_get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""

    async def kv_set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        """Set the value; `ttl` seconds until it expires (None: never)."""

    async def kv_set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool:
        """Atomically set the value only if the key is absent (or expired); True when set."""

    async def kv_delete(self, key: str) -> bool:
        """Delete the key; True when it existed."""

    async def kv_delete_if_equals(self, key: str, value: str) -> bool:
        """Atomically delete the key only while it holds `value` (lock release); True when deleted."""

    async def kv_expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        """Atomically reset the TTL only while the key holds `value` (lease renewal); True when renewed."""

    async def kv_set_fenced(
        self, key: str, value: str, *, job_id: str, owner: str, attempt: int, ttl: float | None = None
    ) -> bool:
        """Atomically set the value only while job `job_id` is running under `owner` at attempt
        `attempt` (the run's fencing token); True when set. A run that lost its job can't write."""

    async def kv_incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Atomically add `amount` (a missing key counts as 0); `ttl` applies when the key is created."""

    async def kv_delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with `prefix`; the number deleted."""

    # -- counters --------------------------------------------------------------------------
    async def counters_add_once(
        self,
        marker: str,
        value: str,
        increments: Sequence[tuple[str, str, int]],
        *,
        marker_ttl: float | None = None,
        ttl: float | None = None,
    ) -> bool:
        """Once per `marker`, atomically: set the key `marker` to `value` (expiring after `marker_ttl`)
        and add each `(counter, field, amount)`; a counter created here expires `ttl` seconds later
        (every field with it). False, and nothing changed, when `marker` is already set."""

    async def counters_get(self, counter: str) -> dict[str, int]:
        """Every field of `counter` and its value; {} when the counter is absent or expired."""

    # -- capped logs -----------------------------------------------------------------------
    async def log_append(self, stream: str, entries: Sequence[dict[str, Any]], *, max_len: int) -> None:
        """Append `entries` (oldest first) in one write, keeping only the newest `max_len` of the stream."""

    async def log_list(self, stream: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` entries, newest first."""

    async def log_delete(self, stream: str) -> None:
        """Drop the whole stream."""

    # -- jobs ------------------------------------------------------------------------------
    async def job_enqueue(self, job: Job) -> tuple[Job, bool]:
        """Store a queued job. When `job.key` is set and a job with that key exists, return
        (existing job, False) and store nothing; otherwise (job, True)."""

    async def job_claim(
        self, owner: str, now: float, lease_s: float, *, job_id: str | None = None, kind: str | None = None
    ) -> Job | None:
        """Claim one runnable job: queued with `due_at <= now`, or running with an expired lease
        (`lease_until <= now`). Earliest `due_at` first; with `kind`, only jobs of that kind. The
        claimed job becomes running, owned by `owner` until `now + lease_s`, with `attempts`
        incremented (the new run's fencing token). With `job_id`, claim only that job (and only
        if runnable by the same rule, ignoring `due_at`). None when nothing."""

    async def job_claim_many(
        self, owner: str, now: float, lease_s: float, *, limit: int, kind: str | None = None
    ) -> list[Job]:
        """Claim up to `limit` runnable jobs in one atomic step, by `job_claim`'s rules (earliest
        `due_at` first, then id; with `kind`, only jobs of that kind): each becomes running, owned
        by `owner` until `now + lease_s`, with its own `attempts` incremented. Returned in that
        order; [] when nothing is runnable or `limit < 1`. No job is claimed by two calls at once."""

    # The four below act only while `owner` holds the lease and, with `attempt`, only for that run
    # of the job (its `attempts` when claimed): a run that lost the job to another can't touch it.
    async def job_extend(self, job_id: str, owner: str, lease_until: float, *, attempt: int | None = None) -> bool:
        """Push the lease out."""

    async def job_complete(
        self, job_id: str, owner: str, result: dict[str, Any] | None = None, *, attempt: int | None = None
    ) -> bool:
        """Mark done with `result`."""

    async def job_retry(
        self, job_id: str, owner: str, due_at: float, error: str, *, attempt: int | None = None
    ) -> bool:
        """Back to queued at `due_at` with `last_error`."""

    async def job_dead(self, job_id: str, owner: str | None, error: str, *, attempt: int | None = None) -> bool:
        """Dead-letter the job with `last_error`. Without `owner` (an operator), any job not done."""

    async def job_get(self, job_id: str) -> Job | None:
        """The job, or None."""

    async def job_update_meta(self, job_id: str, meta: dict[str, Any]) -> bool:
        """Merge `meta` into the job's `meta` (progress notes any state may carry)."""

    async def job_list(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest `created_at` first, optionally only those in `state`."""

    async def job_replay(self, job_id: str, now: float) -> bool:
        """Put a dead job back in the queue, due now, with `attempts` reset; True when it was dead."""

    async def job_purge(self, before: float) -> int:
        """Delete done and dead jobs last updated before `before`; the number deleted."""
