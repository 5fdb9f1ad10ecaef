"""The embedded backend: one SQLite file, safe to share between several processes.

Every call runs on ONE dedicated worker thread that owns ONE connection, so the event loop does
not wait on the disk and there is no per-call connection setup. The one exception is the ack
path's write, a batch of new jobs: while the file is free and such commits are quick, it is
committed right on the event loop's thread, through a second connection that never waits for a
lock (`_inline_writer`); otherwise it goes to the store thread like everything else.

Several processes (the CLI while the server runs, two gateway processes) may open the same file:
WAL lets readers run beside the single writer, `busy_timeout` makes writers wait for each other
instead of failing, and every read-modify-write runs in `BEGIN IMMEDIATE` (or is one statement,
which SQLite write-locks from the start), so no two processes can both win a race such as claiming
the same job.

Group commit: the calls waiting together when the thread turns to its queue run in one
`BEGIN IMMEDIATE` .. `COMMIT`, each in a savepoint of its own, so under load N concurrent writes
cost one fsync (synchronous=FULL) instead of N, and no caller hears of its write before that
commit. Concurrent job enqueues are first gathered into one multi-row INSERT (`GroupCommit`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import gateway.storage._sqlite_sql as queries
from gateway.clock import Clock
from gateway.exceptions import StoreError
from gateway.storage._group_commit import Done, GroupCommit
from gateway.storage._inline_writer import DEFAULT_BUDGET, InlineWriter
from gateway.storage._store_thread import Outcomes, Raised, StoreThread, run_each
from gateway.storage.base import Job, JobState, json_dumps, json_loads_object, prepare_enqueue

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")
_Params = Sequence[Any] | Mapping[str, Any]

_BUSY_TIMEOUT_MS = 10_000
_KV_SWEEP_EVERY = 1_000  # writes between purges of expired keys (reads just ignore them)


def _row_to_job(row: sqlite3.Row) -> Job:
    # float(): RETURNING hands back integral REALs as ints; callers expect floats.
    return Job(
        id=row["id"],
        kind=row["kind"],
        payload=json_loads_object(row["payload"]),
        key=row["key"],
        endpoint_id=row["endpoint_id"],
        state=row["state"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        due_at=float(row["due_at"]),
        lease_owner=row["lease_owner"],
        lease_until=None if row["lease_until"] is None else float(row["lease_until"]),
        last_error=row["last_error"],
        result=None if row["result"] is None else json_loads_object(row["result"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        meta=json_loads_object(row["meta"]),
    )


def _immediate(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run `fn` in a write transaction taken up front, so no other process can interleave."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn)
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    conn.commit()
    return out


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string starting with `prefix` (None when there is none)."""
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i]) + 1
        if code == 0xD800:  # skip the surrogate block, which cannot be encoded
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:i] + chr(code)
    return None


class _StoreCall(Generic[_T]):
    """One store call for the store thread: run alone (`__call__`) or inside a batch (`fn`)."""

    __slots__ = ("fn", "store", "write")

    def __init__(self, store: SQLiteStore, fn: Callable[[sqlite3.Connection], _T], write: bool) -> None:
        self.store = store
        self.fn = fn
        self.write = write

    def __call__(self) -> _T:
        return self.store._invoke(self.fn, self.write)


class SQLiteStore:
    """The `Store` contract over one SQLite file (or `:memory:`), driven from one worker thread.

    Create it with `await SQLiteStore.open(path, clock=clock)`, which also creates the tables.
    Key TTLs are enforced with `clock`: entries keep an absolute expiry, expired ones read as
    absent and are purged now and then.
    """

    def __init__(self, path: str, *, clock: Clock, inline_budget: float | None = DEFAULT_BUDGET) -> None:
        self._path = path
        self._clock = clock
        self._thread = StoreThread("sqlite-store", run_batch=self._run_batch)
        # New jobs committed on the event loop's thread while the file is free and commits quick
        # (`_inline_writer`); `open` drops it when no file is behind the store (see there).
        self._inline = (
            InlineWriter(path, clock=clock, budget=inline_budget, checkpoint=self._checkpoint_soon)
            if inline_budget is not None
            else None
        )
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        self._closed = False
        self._kv_writes = 0
        self._enqueues = GroupCommit(self._start_enqueues)
        self._counter_adds = GroupCommit.awaiting(self._counters_batch)  # one answer's usage each, many a commit

    @classmethod
    async def open(cls, path: str, *, clock: Clock, inline_budget: float | None = DEFAULT_BUDGET) -> SQLiteStore:
        """Open (creating if needed) the database file and its tables.

        `inline_budget`: new jobs are committed on the event loop's thread while the file is free
        and such commits take under this many seconds (`_inline_writer`); None: never.
        """
        store = cls(path, clock=clock, inline_budget=inline_budget)
        try:
            await store.ping()
            # In memory (":memory:", "file::memory:", ...) or a private temporary database (""),
            # SQLite tells by naming no file: a second connection would open a database of its own.
            if store._inline is not None:
                main, *_ = await store._fetch("PRAGMA database_list")
                if not main["file"]:
                    store._inline = None
        except BaseException:
            await store.aclose()
            raise
        return store

    # -- plumbing (worker thread) ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; we issue BEGIN IMMEDIATE ourselves.
        conn = sqlite3.connect(self._path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is on disk when it returns (NORMAL may lose the last ones on power loss),
            # so an ack that follows a committed enqueue survives power loss; group commit syncs once a batch.
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(queries.SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _run_batch(self, calls: Sequence[Callable[[], Any]]) -> Outcomes:
        """The calls waiting together, in one write transaction: one commit (one fsync) for all.

        Each call runs in a savepoint of its own, so one that fails is undone alone and its caller
        alone gets the exception, as if it had run by itself. Reads inside see the writes before
        them. Nobody hears of a write before the COMMIT (synchronous=FULL) returned. A single
        call, or anything but store calls (closing, a checkpoint), runs as before: reads never take the lock.
        """
        if len(calls) == 1 or not all(isinstance(call, _StoreCall) for call in calls):
            return run_each(calls)
        conn = self._connection()
        outcomes: Outcomes = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for call in calls:
                assert isinstance(call, _StoreCall)
                conn.execute("SAVEPOINT call")
                try:
                    outcomes.append(call.fn(conn))
                except Exception as exc:
                    conn.execute("ROLLBACK TO call")
                    outcomes.append(Raised(exc))
                conn.execute("RELEASE call")
            conn.commit()
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        return outcomes

    def _invoke(self, fn: Callable[[sqlite3.Connection], _T], write: bool) -> _T:
        conn = self._connection()
        return _immediate(conn, fn) if write else fn(conn)

    def _checkpoint_soon(self, done: Callable[[], None]) -> None:
        """Have the store thread checkpoint the WAL (passive: it never waits for another connection),
        then call `done` on the loop; a checkpoint that failed is retried by the next.

        Not a `_StoreCall`: SQLite refuses a checkpoint inside a transaction, so `_run_batch` runs
        the calls waiting with it each on its own rather than in one transaction around it."""

        def checkpoint() -> None:
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

        self._thread.post(checkpoint, lambda outcome: done())

    def _shutdown(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(
        self, fn: Callable[[sqlite3.Connection], _T], *, write: bool = False, closing_ok: bool = False
    ) -> _T:
        if self._closed and not closing_ok:
            raise StoreError("The SQLite store is closed.")
        try:
            return await self._thread.run(_StoreCall(self, fn, write))
        except sqlite3.DatabaseError as exc:
            failure = self._failure(exc)
            if failure is exc:
                raise
            raise failure from exc

    def _failure(self, exc: BaseException) -> BaseException:
        """What a store call that raised `exc` raises: a `StoreError` if the database is unavailable."""
        if not isinstance(exc, sqlite3.DatabaseError):
            return exc
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError):
            return exc  # our bug or bad input, not an unavailable store
        failure = StoreError(f"SQLite store failed ({self._path}): {exc}")
        failure.__cause__ = exc
        return failure

    async def _fetch(self, sql: str, params: _Params = ()) -> list[sqlite3.Row]:
        # fetchall() steps a statement to its end, which is what commits an autocommit write.
        return await self._run(lambda c: c.execute(sql, params).fetchall())

    async def _exec(self, sql: str, params: _Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return await self._run(lambda c: c.execute(sql, params).rowcount)

    def _expires_at(self, now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    def _kv_wrote(self, conn: sqlite3.Connection, now: float) -> None:
        """Count a key write; every so often drop the expired keys so the table cannot grow forever."""
        self._kv_writes += 1
        if self._kv_writes % _KV_SWEEP_EVERY == 0:
            conn.execute("DELETE FROM kv WHERE expires_at <= ?", (now,))

    # -- lifecycle -------------------------------------------------------------------------------
    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._enqueues.wait_idle()  # enqueues accepted before the close are written
        await self._counter_adds.wait_idle()
        if self._inline is not None:
            self._inline.close()
        try:
            await self._thread.run(self._shutdown)
        finally:
            # The queue is empty by now, so joining the worker thread is immediate.
            self._thread.close()

    # -- documents -------------------------------------------------------------------------------
    async def doc_get(self, collection: str, key: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT doc FROM docs WHERE collection = ? AND key = ?", (collection, key))
        return json_loads_object(rows[0][0]) if rows else None

    async def doc_put(self, collection: str, key: str, doc: dict[str, Any]) -> None:
        await self._exec(
            "INSERT INTO docs (collection, key, doc) VALUES (?, ?, ?)"
            " ON CONFLICT (collection, key) DO UPDATE SET doc = excluded.doc",
            (collection, key, json_dumps(doc)),
        )

    async def doc_create(self, collection: str, key: str, doc: dict[str, Any]) -> bool:
        sql = "INSERT INTO docs (collection, key, doc) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
        return await self._exec(sql, (collection, key, json_dumps(doc))) == 1

    async def doc_delete(self, collection: str, key: str) -> bool:
        return await self._exec("DELETE FROM docs WHERE collection = ? AND key = ?", (collection, key)) == 1

    async def doc_list(self, collection: str) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT doc FROM docs WHERE collection = ? ORDER BY key", (collection,))
        return [json_loads_object(row[0]) for row in rows]

    # -- key-value -------------------------------------------------------------------------------
    async def kv_get(self, key: str) -> str | None:
        params = {"key": key, "now": self._clock.time()}
        rows = await self._fetch(f"SELECT value FROM kv WHERE key = :key AND {queries.LIVE}", params)
        return str(rows[0][0]) if rows else None

    async def kv_set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        now = self._clock.time()
        params = (key, value, self._expires_at(now, ttl))

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                params,
            )
            self._kv_wrote(c, now)

        await self._run(op, write=True)

    async def kv_set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool:
        now = self._clock.time()
        params = {"key": key, "value": value, "exp": self._expires_at(now, ttl), "now": now}

        def op(c: sqlite3.Connection) -> bool:
            # An expired row counts as absent, so the upsert overwrites it.
            rows = c.execute(queries.SET_IF_ABSENT, params).fetchall()
            self._kv_wrote(c, now)
            return bool(rows)

        return await self._run(op, write=True)

    async def kv_delete(self, key: str) -> bool:
        now = self._clock.time()
        rows = await self._fetch("DELETE FROM kv WHERE key = ? RETURNING expires_at", (key,))
        return bool(rows) and (rows[0][0] is None or rows[0][0] > now)

    async def kv_delete_if_equals(self, key: str, value: str) -> bool:
        params = {"key": key, "value": value, "now": self._clock.time()}
        return await self._exec(f"DELETE FROM kv WHERE key = :key AND value = :value AND {queries.LIVE}", params) == 1

    async def kv_expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        now = self._clock.time()
        params = {"key": key, "value": value, "now": now, "exp": now + ttl}
        sql = f"UPDATE kv SET expires_at = :exp WHERE key = :key AND value = :value AND {queries.LIVE}"
        return await self._exec(sql, params) == 1

    async def kv_set_fenced(
        self, key: str, value: str, *, job_id: str, owner: str, attempt: int, ttl: float | None = None
    ) -> bool:
        now = self._clock.time()
        params = {"key": key, "value": value, "exp": self._expires_at(now, ttl), "id": job_id, "owner": owner}

        def op(c: sqlite3.Connection) -> bool:
            stored = c.execute(queries.SET_FENCED, {**params, "attempt": attempt}).rowcount == 1
            self._kv_wrote(c, now)
            return stored

        return await self._run(op, write=True)

    async def kv_incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        now = self._clock.time()
        expires_at = self._expires_at(now, ttl)

        def op(c: sqlite3.Connection) -> int:
            rows = c.execute(
                f"SELECT value FROM kv WHERE key = :key AND {queries.LIVE}", {"key": key, "now": now}
            ).fetchall()
            if rows:  # a live counter keeps its TTL
                try:
                    value = int(rows[0][0]) + amount
                except ValueError:
                    raise ValueError(f"key {key!r} does not hold an integer") from None
                c.execute("UPDATE kv SET value = ? WHERE key = ?", (str(value), key))
            else:  # absent or expired: starts from 0 with a fresh TTL
                value = amount
                c.execute(
                    "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)", (key, str(value), expires_at)
                )
            self._kv_wrote(c, now)
            return value

        return await self._run(op, write=True)

    async def kv_delete_prefix(self, prefix: str) -> int:
        now = self._clock.time()
        upper = _prefix_upper_bound(prefix)
        # A key range (not LIKE, which is case-insensitive and needs escaping) so the primary key index is used.
        sql = "DELETE FROM kv WHERE key >= ?" + (" AND key < ?" if upper is not None else "") + " RETURNING expires_at"
        params = (prefix, upper) if upper is not None else (prefix,)
        rows = await self._fetch(sql, params)
        return sum(1 for (expires_at,) in rows if expires_at is None or expires_at > now)

    # -- counters --------------------------------------------------------------------------------
    async def counters_add_once(
        self,
        marker: str,
        value: str,
        increments: Sequence[tuple[str, str, int]],
        *,
        marker_ttl: float | None = None,
        ttl: float | None = None,
    ) -> bool:
        if self._closed:
            raise StoreError("The SQLite store is closed.")
        now = self._clock.time()
        marked = {"key": marker, "value": value, "exp": self._expires_at(now, marker_ttl), "now": now}
        expires_at = self._expires_at(now, ttl)
        rows = [(counter, name, int(amount), now, expires_at) for counter, name, amount in increments]
        # Group commit: the usage of answers ending together shares one transaction (one fsync).
        return await self._counter_adds.submit((marked, rows))

    async def _counters_batch(
        self, batch: Sequence[tuple[dict[str, Any], list[tuple[str, str, int, float, float | None]]]]
    ) -> list[bool | Exception]:
        def op(c: sqlite3.Connection) -> list[bool | Exception]:
            added: list[bool | Exception] = []
            for marked, rows in batch:
                # The marker as kv_set_if_absent sets it, then its counters, all in one transaction.
                if not c.execute(queries.SET_IF_ABSENT, marked).fetchall():
                    added.append(False)
                    continue
                c.executemany(queries.COUNTER_ADD, rows)
                added.append(True)
                self._kv_wrote(c, marked["now"])
                if self._kv_writes % _KV_SWEEP_EVERY == 0:
                    c.execute("DELETE FROM counters WHERE expires_at <= ?", (marked["now"],))
            return added

        return await self._run(op, write=True, closing_ok=True)

    async def counters_get(self, counter: str) -> dict[str, int]:
        params = {"name": counter, "now": self._clock.time()}
        rows = await self._fetch(f"SELECT field, value FROM counters WHERE name = :name AND {queries.LIVE}", params)
        return {str(row[0]): int(row[1]) for row in rows}

    # -- capped logs -----------------------------------------------------------------------------
    async def log_append(self, stream: str, entries: Sequence[dict[str, Any]], *, max_len: int) -> None:
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        if not entries:
            return
        rows = [(stream, json_dumps(entry)) for entry in entries]

        def op(c: sqlite3.Connection) -> None:
            c.executemany("INSERT INTO logs (stream, entry) VALUES (?, ?)", rows)
            c.execute(
                "DELETE FROM logs WHERE stream = :s AND id < "
                "(SELECT id FROM logs WHERE stream = :s ORDER BY id DESC LIMIT 1 OFFSET :keep)",
                {"s": stream, "keep": max_len - 1},
            )

        await self._run(op, write=True)

    async def log_list(self, stream: str, limit: int) -> list[dict[str, Any]]:
        if limit < 1:
            return []
        rows = await self._fetch("SELECT entry FROM logs WHERE stream = ? ORDER BY id DESC LIMIT ?", (stream, limit))
        return [json_loads_object(row[0]) for row in rows]

    async def log_delete(self, stream: str) -> None:
        await self._exec("DELETE FROM logs WHERE stream = ?", (stream,))

    # -- jobs ------------------------------------------------------------------------------------
    async def job_enqueue(self, job: Job) -> tuple[Job, bool]:
        if self._closed:
            raise StoreError("The SQLite store is closed.")
        new = prepare_enqueue(job, self._clock.time())
        # The row's values in the order of queries.JOB_COLUMNS.
        row = (
            new.id,
            new.key,
            new.kind,
            json_dumps(new.payload),
            new.endpoint_id,
            new.state,
            new.attempts,
            new.max_attempts,
            new.due_at,
            new.lease_owner,
            new.lease_until,
            new.last_error,
            None if new.result is None else json_dumps(new.result),
            new.created_at,
            new.updated_at,
            json_dumps(new.meta),
        )
        # Group commit: enqueues arriving together share one statement, one transaction (one fsync).
        return await self._enqueues.submit((new, row))

    def _start_enqueues(self, batch: Sequence[tuple[Job, tuple[Any, ...]]], done: Done[tuple[Job, bool]]) -> None:
        params = [value for _, row in batch for value in row]
        # The common case, every row new: one plain INSERT, a transaction of its own (one sqlite3
        # step, the commit and its fsync included: each step hands the GIL over and back). A taken
        # id or key fails the whole statement, leaving nothing written.
        insert = queries.insert_jobs_strictly(len(batch))

        def landed(outcome: Any) -> None:  # on the loop, so the callers hear of their commit this turn
            if not isinstance(outcome, Raised):
                done([(new, True) for new, _ in batch])
            elif isinstance(outcome.exc, sqlite3.IntegrityError):  # some id or key is taken: row by row
                self._enqueue_rows(batch, params, done)
            else:
                done(self._failure(outcome.exc))

        if self._inline is not None:  # right here, if the file is free and commits are quick
            try:
                committed = self._inline.execute(insert, params)
            except Exception as exc:
                landed(Raised(exc))
                return
            if committed:
                landed(None)
                return

        def fast(c: sqlite3.Connection) -> None:
            c.execute(insert, params)

        # Posted rather than awaited: the batch's outcome reaches its callers in the turn it lands.
        self._thread.post(_StoreCall(self, fast, write=False), landed)

    def _enqueue_rows(
        self, batch: Sequence[tuple[Job, tuple[Any, ...]]], params: list[Any], done: Done[tuple[Job, bool]]
    ) -> None:
        """Write `batch` row-aware on the store thread, then hand `done` each caller's outcome."""
        keys = [new.key for new, _ in batch if new.key is not None]

        def op(c: sqlite3.Connection) -> tuple[list[tuple[str, str | None]], list[sqlite3.Row]]:
            # One statement for the whole batch; a row whose id or key is taken (before, or by an
            # earlier row of the batch) is skipped.
            inserted = [(r[0], r[1]) for r in c.execute(queries.insert_jobs(len(batch)), params).fetchall()]
            found = c.execute(queries.jobs_by_keys(len(keys)), keys).fetchall() if len(inserted) < len(batch) else []
            return inserted, found

        def landed(outcome: Any) -> None:  # on the loop, like the quick insert's
            if isinstance(outcome, Raised):
                done(self._failure(outcome.exc))
                return
            inserted, found = outcome
            by_key = {row["key"]: row for row in found}
            out: list[tuple[Job, bool] | Exception] = []
            # A skipped row matches no later one with the same (id, key): that would conflict the same way.
            remaining = set(inserted)
            for new, _ in batch:
                if (new.id, new.key) in remaining:
                    remaining.discard((new.id, new.key))
                    out.append((new, True))
                elif new.key is not None and new.key in by_key:
                    out.append((_row_to_job(by_key[new.key]), False))
                else:
                    out.append(ValueError(f"a job with id {new.id!r} already exists"))
            done(out)

        self._thread.post(_StoreCall(self, op, write=True), landed)

    async def job_claim(
        self, owner: str, now: float, lease_s: float, *, job_id: str | None = None, kind: str | None = None
    ) -> Job | None:
        params = {"owner": owner, "now": now, "lease_until": now + lease_s, "job_id": job_id, "kind": kind}
        if job_id is not None:
            sql = queries.CLAIM_ONE
        else:
            sql = queries.CLAIM_NEXT if kind is None else queries.CLAIM_NEXT_OF_KIND
        # One UPDATE ... RETURNING: SQLite takes the write lock before it reads, so it is atomic across processes.
        rows = await self._fetch(sql, params)
        return _row_to_job(rows[0]) if rows else None

    async def job_claim_many(
        self, owner: str, now: float, lease_s: float, *, limit: int, kind: str | None = None
    ) -> list[Job]:
        if limit < 1:
            return []
        params = {"owner": owner, "now": now, "lease_until": now + lease_s, "limit": limit, "kind": kind}
        # One UPDATE ... RETURNING, atomic across processes like job_claim's.
        rows = await self._fetch(queries.CLAIM_MANY if kind is None else queries.CLAIM_MANY_OF_KIND, params)
        return sorted((_row_to_job(row) for row in rows), key=lambda job: (job.due_at, job.id))

    async def _job_update(self, sql: str, params: dict[str, Any]) -> bool:
        params = {"now": self._clock.time(), **params}
        return await self._exec(sql, params) == 1

    async def job_extend(self, job_id: str, owner: str, lease_until: float, *, attempt: int | None = None) -> bool:
        return await self._job_update(
            f"UPDATE jobs SET lease_until = :until, updated_at = :now WHERE {queries.OWNED}",
            {"id": job_id, "owner": owner, "attempt": attempt, "until": lease_until},
        )

    async def job_complete(
        self, job_id: str, owner: str, result: dict[str, Any] | None = None, *, attempt: int | None = None
    ) -> bool:
        return await self._job_update(
            "UPDATE jobs SET state = 'done', result = :result, lease_owner = NULL, lease_until = NULL,"
            f" updated_at = :now WHERE {queries.OWNED}",
            {
                "id": job_id,
                "owner": owner,
                "attempt": attempt,
                "result": None if result is None else json_dumps(result),
            },
        )

    async def job_retry(
        self, job_id: str, owner: str, due_at: float, error: str, *, attempt: int | None = None
    ) -> bool:
        return await self._job_update(
            "UPDATE jobs SET state = 'queued', due_at = :due, last_error = :error, lease_owner = NULL,"
            f" lease_until = NULL, updated_at = :now WHERE {queries.OWNED}",
            {"id": job_id, "owner": owner, "attempt": attempt, "due": due_at, "error": error},
        )

    async def job_dead(self, job_id: str, owner: str | None, error: str, *, attempt: int | None = None) -> bool:
        # Without an owner (an operator's decision) any job not yet done can be dead-lettered.
        where = queries.OWNED if owner is not None else "id = :id AND state != 'done'"
        return await self._job_update(
            "UPDATE jobs SET state = 'dead', last_error = :error, lease_owner = NULL, lease_until = NULL,"
            f" updated_at = :now WHERE {where}",
            {"id": job_id, "owner": owner, "attempt": attempt, "error": error},
        )

    async def job_get(self, job_id: str) -> Job | None:
        rows = await self._fetch(f"SELECT {queries.JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _row_to_job(rows[0]) if rows else None

    async def job_update_meta(self, job_id: str, meta: dict[str, Any]) -> bool:
        # A shallow merge that leaves `updated_at` alone, so progress notes do not delay a purge.
        def op(c: sqlite3.Connection) -> bool:
            rows = c.execute("SELECT meta FROM jobs WHERE id = ?", (job_id,)).fetchall()
            if not rows:
                return False
            merged = {**json_loads_object(rows[0][0]), **meta}
            c.execute("UPDATE jobs SET meta = ? WHERE id = ?", (json_dumps(merged), job_id))
            return True

        return await self._run(op, write=True)

    async def job_list(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
        if limit < 1:
            return []
        rows = await self._fetch(queries.job_list(state is not None), {"state": state, "limit": limit})
        return [_row_to_job(row) for row in rows]

    async def job_replay(self, job_id: str, now: float) -> bool:
        sql = (
            "UPDATE jobs SET state = 'queued', attempts = 0, due_at = :now, lease_owner = NULL,"
            " lease_until = NULL, updated_at = :now WHERE id = :id AND state = 'dead'"
        )
        return await self._exec(sql, {"id": job_id, "now": now}) == 1

    async def job_purge(self, before: float) -> int:
        return await self._exec(queries.PURGE, (before,))
