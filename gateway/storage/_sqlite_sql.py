"""The SQL of the SQLite backend (`gateway.storage.sqlite`): schema and the statements worth naming."""

from __future__ import annotations

import functools
from typing import get_args

from gateway.storage.base import JobState

__all__ = [
    "CLAIM_MANY",
    "CLAIM_MANY_OF_KIND",
    "CLAIM_NEXT",
    "CLAIM_NEXT_OF_KIND",
    "CLAIM_ONE",
    "COUNTER_ADD",
    "JOB_COLUMNS",
    "LIVE",
    "OWNED",
    "PURGE",
    "SCHEMA",
    "SET_FENCED",
    "SET_IF_ABSENT",
    "insert_jobs",
    "insert_jobs_strictly",
    "job_list",
    "jobs_by_keys",
]

SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL, field TEXT NOT NULL, value INTEGER NOT NULL, expires_at REAL, PRIMARY KEY (name, field)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_expiry ON counters (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS logs_stream ON logs (stream, id);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, key TEXT UNIQUE, kind TEXT NOT NULL, payload TEXT NOT NULL, endpoint_id TEXT,
    state TEXT NOT NULL, attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL, due_at REAL NOT NULL,
    lease_owner TEXT, lease_until REAL, last_error TEXT, result TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, due_at, id);
CREATE INDEX IF NOT EXISTS jobs_kind_due ON jobs (state, kind, due_at, id);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (state, lease_until);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created_at, id);
DROP INDEX IF EXISTS jobs_updated;
DROP INDEX IF EXISTS jobs_created;
COMMIT;
"""
# Every index of `jobs` is written on every new job: each costs a page or more of every commit's WAL.
# The purge and the unfiltered list go through `jobs_state_created`, not indexes of their own
# (`jobs_updated`, `jobs_created`, dropped above from databases made before).

# Finished jobs last updated before `?`. `updated_at < ?` implies `created_at < ?` (a job is
# updated at or after it is made), which lets the purge range over `jobs_state_created`; a clock
# stepped back only keeps a job until its `created_at` is old enough too.
PURGE = "DELETE FROM jobs WHERE state IN ('done', 'dead') AND created_at < ?1 AND updated_at < ?1"

JOB_COLUMNS = (
    "id, key, kind, payload, endpoint_id, state, attempts, max_attempts, due_at, lease_owner, lease_until,"
    " last_error, result, created_at, updated_at, meta"
)
_JOB_ROW = "(" + ", ".join("?" * len(JOB_COLUMNS.split(", "))) + ")"


@functools.cache
def insert_jobs(n: int) -> str:
    """Insert `n` jobs (positional parameters, row after row) in one statement; a row whose id
    or key is taken is skipped. Returns (id, key) of each row inserted."""
    return (
        f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES {', '.join([_JOB_ROW] * n)} ON CONFLICT DO NOTHING RETURNING id, key"
    )


@functools.cache
def insert_jobs_strictly(n: int) -> str:
    """Insert `n` jobs in one statement that fails whole (IntegrityError) if any id or key is taken;
    no RETURNING, so it runs in one step however many rows."""
    return f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES {', '.join([_JOB_ROW] * n)}"


@functools.cache
def job_list(of_state: bool) -> str:
    """The `:limit` newest jobs, newest first: of the state `:state` if `of_state`. All of them:
    the newest `:limit` of each state through `jobs_state_created`, merged (no scan of the table)."""
    order = "ORDER BY created_at DESC, id DESC LIMIT :limit"
    if of_state:
        return f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = :state {order}"
    heads = " UNION ALL ".join(
        f"SELECT * FROM (SELECT {JOB_COLUMNS} FROM jobs WHERE state = '{each}' {order})" for each in get_args(JobState)
    )
    return f"SELECT * FROM ({heads}) {order}"


@functools.cache
def jobs_by_keys(n: int) -> str:
    return f"SELECT {JOB_COLUMNS} FROM jobs WHERE key IN ({', '.join('?' * n)})"


_CLAIM_SET = (
    "UPDATE jobs SET state = 'running', lease_owner = :owner, lease_until = :lease_until,"
    " attempts = attempts + 1, updated_at = :now"
)


# The earliest runnable job: the head of each candidate set is found through an index (no scan of
# the queue), then the two heads are compared (due_at, then id, as the Redis backend orders them).
def _claim_next(kind: str) -> str:
    return f"""{_CLAIM_SET}
WHERE id = (
    SELECT id FROM (
        SELECT * FROM (SELECT id, due_at FROM jobs WHERE state = 'queued' AND due_at <= :now{kind}
                       ORDER BY due_at, id LIMIT 1)
        UNION ALL
        SELECT * FROM (SELECT id, due_at FROM jobs WHERE state = 'running' AND lease_until <= :now{kind}
                       ORDER BY due_at, id LIMIT 1)
    ) ORDER BY due_at, id LIMIT 1
)
RETURNING {JOB_COLUMNS}"""


CLAIM_NEXT = _claim_next("")
CLAIM_NEXT_OF_KIND = _claim_next(" AND kind = :kind")


# The `:limit` earliest runnable jobs in one statement: up to `:limit` heads of each candidate set
# (through the same indexes), merged and cut to `:limit`. The RETURNING order is unspecified.
def _claim_many(kind: str) -> str:
    return f"""{_CLAIM_SET}
WHERE id IN (
    SELECT id FROM (
        SELECT * FROM (SELECT id, due_at FROM jobs WHERE state = 'queued' AND due_at <= :now{kind}
                       ORDER BY due_at, id LIMIT :limit)
        UNION ALL
        SELECT * FROM (SELECT id, due_at FROM jobs WHERE state = 'running' AND lease_until <= :now{kind}
                       ORDER BY due_at, id LIMIT :limit)
    ) ORDER BY due_at, id LIMIT :limit
)
RETURNING {JOB_COLUMNS}"""


CLAIM_MANY = _claim_many("")
CLAIM_MANY_OF_KIND = _claim_many(" AND kind = :kind")
CLAIM_ONE = f"""{_CLAIM_SET}
WHERE id = :job_id AND (state = 'queued' OR (state = 'running' AND lease_until <= :now))
RETURNING {JOB_COLUMNS}"""
LIVE = "(expires_at IS NULL OR expires_at > :now)"
# Held by `owner` and, when the caller names its run (`:attempt` not NULL), by that run only.
OWNED = "id = :id AND state = 'running' AND lease_owner = :owner AND (:attempt IS NULL OR attempts = :attempt)"
# One statement, so the check and the write are atomic (SQLite write-locks it from the start).
SET_FENCED = """INSERT INTO kv (key, value, expires_at)
SELECT :key, :value, :exp WHERE EXISTS (
    SELECT 1 FROM jobs WHERE id = :id AND state = 'running' AND lease_owner = :owner AND attempts = :attempt
)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"""
# Add to one counter field. A live counter keeps the expiry it was created with (its other fields'
# expiry, like a Redis hash's); an expired field starts again from the amount with a fresh expiry.
# Parameters by position (?1 name, ?2 field, ?3 amount, ?4 now, ?5 expires): one tuple per counter
# field, a few dozen per answer, where named ones took a dict each.
COUNTER_ADD = """INSERT INTO counters (name, field, value, expires_at)
VALUES (?1, ?2, ?3, COALESCE(
    (SELECT expires_at FROM counters WHERE name = ?1 AND (expires_at IS NULL OR expires_at > ?4) LIMIT 1), ?5
))
ON CONFLICT (name, field) DO UPDATE SET
    value = CASE WHEN counters.expires_at IS NOT NULL AND counters.expires_at <= ?4
        THEN excluded.value ELSE counters.value + excluded.value END,
    expires_at = CASE WHEN counters.expires_at IS NOT NULL AND counters.expires_at <= ?4
        THEN excluded.expires_at ELSE counters.expires_at END"""
# Set a key unless it is live; an expired row counts as absent, so the upsert overwrites it.
SET_IF_ABSENT = """INSERT INTO kv (key, value, expires_at) VALUES (:key, :value, :exp)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= :now RETURNING 1"""
