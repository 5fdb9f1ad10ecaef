"""SQLite only: a file shared across restarts and by several processes, and `:memory:`."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from gateway.clock import FakeClock
from gateway.exceptions import StoreError
from gateway.storage import _sqlite_sql as queries
from gateway.storage.base import Job
from gateway.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def job(job_id: str, *, due_at: float = T0, key: str | None = None) -> Job:
    return Job(id=job_id, kind="test", payload={"n": job_id}, key=key, due_at=due_at)


async def test_sqlite_is_durable_across_reopen(tmp_path: Path, clock: FakeClock) -> None:
    path = str(tmp_path / "gw.db")
    first = await SQLiteStore.open(path, clock=clock)
    try:
        await first.doc_put("apps", "a", {"v": 1})
        await first.kv_set("k", "v")
        await first.log_append("s", [{"i": 1}], max_len=5)
        await first.job_enqueue(job("j1", key="k1"))
    finally:
        await first.aclose()

    second = await SQLiteStore.open(path, clock=clock)
    try:
        assert await second.doc_get("apps", "a") == {"v": 1}
        assert await second.kv_get("k") == "v"
        assert await second.log_list("s", 5) == [{"i": 1}]
        assert (await second.job_enqueue(job("j2", key="k1")))[1] is False
        claimed = await second.job_claim("w", T0, 30)
        assert claimed is not None and claimed.id == "j1"
    finally:
        await second.aclose()


async def test_a_database_made_before_loses_the_indexes_no_statement_needs(tmp_path: Path, clock: FakeClock) -> None:
    """`jobs_updated` and `jobs_created` (every new job wrote both) are dropped on open; the jobs
    in them stay, listed and purged as before."""
    path = str(tmp_path / "gw.db")
    first = await SQLiteStore.open(path, clock=clock)
    try:
        await first.job_enqueue(job("j1"))
    finally:
        await first.aclose()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # the indexes as an older gateway made them
        conn.execute("CREATE INDEX jobs_updated ON jobs (state, updated_at)")
        conn.execute("CREATE INDEX jobs_created ON jobs (created_at, id)")
        conn.commit()

    second = await SQLiteStore.open(path, clock=clock)
    try:
        indexes = {row[0] for row in await second._fetch("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"jobs_due", "jobs_kind_due", "jobs_lease", "jobs_state_created"} <= indexes
        assert not indexes & {"jobs_updated", "jobs_created"}
        assert [j.id for j in await second.job_list()] == ["j1"]
    finally:
        await second.aclose()


@pytest.mark.parametrize(
    ("name", "sql", "params", "bounded_by"),
    [
        ("claim next", queries.CLAIM_NEXT, {}, "due_at<?"),
        ("claim next of kind", queries.CLAIM_NEXT_OF_KIND, {}, "due_at<?"),
        ("claim many", queries.CLAIM_MANY, {}, "due_at<?"),
        ("claim many of kind", queries.CLAIM_MANY_OF_KIND, {}, "due_at<?"),
        ("claim one", queries.CLAIM_ONE, {}, "(id=?)"),
        ("purge", queries.PURGE, (T0,), "created_at<?"),
        ("list", queries.job_list(False), {}, "(state=?)"),
        ("list of a state", queries.job_list(True), {"state": "done"}, "(state=?)"),
    ],
)
async def test_job_statements_search_an_index_never_scan_the_table(
    tmp_path: Path, clock: FakeClock, name: str, sql: str, params: tuple[float] | dict[str, object], bounded_by: str
) -> None:
    """Every job statement finds its rows through an index, bounded by what it asks for, on a table
    of thousands of jobs in every state: none costs more as finished jobs pile up before a purge.
    (The expired-lease arm of the batch claims walks the running jobs through `jobs_due` unbounded:
    as many as are leased, never the finished ones.)"""
    store = await SQLiteStore.open(str(tmp_path / "gw.db"), clock=clock)
    try:
        for n in range(2_000):
            await store.job_enqueue(job(f"j{n:05}", due_at=T0 + n))
        for _ in range(3):
            assert await store.job_claim_many("w", T0 + 10_000, 30, limit=500)
        await store._exec("UPDATE jobs SET state = 'done' WHERE rowid % 3 = 0 AND state = 'running'")
        await store._exec("UPDATE jobs SET state = 'dead' WHERE rowid % 3 = 1 AND state = 'running'")
        await store._exec("ANALYZE")
        named = {"owner": "w", "now": T0, "lease_until": T0, "limit": 10, "kind": "test", "job_id": "j00001"}
        bound = params if isinstance(params, tuple) else {**named, **params}
        plan = await store._fetch("EXPLAIN QUERY PLAN " + sql, bound)
    finally:
        await store.aclose()
    steps = [row["detail"] for row in plan if " jobs" in row["detail"]]
    assert steps, name
    assert all(step.startswith("SEARCH jobs USING") for step in steps), (name, steps)
    assert any(bounded_by in step for step in steps), (name, steps)
    # A search the index hands back out of order is sorted whole (a temp B-tree beside it): only a
    # range (`<?`) may be, never every job of a state (`(state=?)` alone on the wrong index).
    sorted_at = {row["parent"] for row in plan if row["detail"].startswith("USE TEMP B-TREE")}
    sorted_whole = [row["detail"] for row in plan if " jobs" in row["detail"] and row["parent"] in sorted_at]
    assert all("<?" in step for step in sorted_whole), (name, sorted_whole)


async def test_sqlite_two_stores_on_one_file_never_share_a_claim(tmp_path: Path, clock: FakeClock) -> None:
    path = str(tmp_path / "shared.db")
    a = await SQLiteStore.open(path, clock=clock)
    b = await SQLiteStore.open(path, clock=clock)
    try:
        for i in range(40):
            await (a if i % 2 else b).job_enqueue(job(f"j{i:02d}", due_at=T0 + i))
        claims: dict[str, list[str]] = {"a": [], "b": []}

        async def worker(name: str, s: SQLiteStore) -> None:
            while (claimed := await s.job_claim(name, T0 + 100, 30)) is not None:
                claims[name].append(claimed.id)
                assert await s.job_complete(claimed.id, name)

        async with anyio.create_task_group() as tg:
            for _ in range(3):  # several tasks per store, as a busy process would have
                tg.start_soon(worker, "a", a)
                tg.start_soon(worker, "b", b)
        every = claims["a"] + claims["b"]
        assert sorted(every) == [f"j{i:02d}" for i in range(40)]  # each job exactly once
        assert all(j.state == "done" for j in await b.job_list(limit=100))
        # A key set through one store is seen, and raced for, through the other.
        assert await a.kv_set_if_absent("lock", "a") is True
        assert await b.kv_set_if_absent("lock", "b") is False
    finally:
        await a.aclose()
        await b.aclose()


async def test_sqlite_memory_store_and_closed_store(clock: FakeClock) -> None:
    mem = await SQLiteStore.open(":memory:", clock=clock)
    await mem.kv_set("k", "v")
    assert await mem.kv_get("k") == "v"
    await mem.aclose()
    await mem.aclose()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await mem.kv_get("k")


_CLAIM_LOOP = """
import asyncio, json, sys
from gateway.clock import FakeClock
from gateway.storage.sqlite import SQLiteStore

async def main(path: str, owner: str) -> None:
    store = await SQLiteStore.open(path, clock=FakeClock())
    claimed = []
    while (job := await store.job_claim(owner, 1e12, 30)) is not None:
        claimed.append(job.id)
        await store.kv_incr("claims")
        assert await store.job_complete(job.id, owner)
    await store.aclose()
    print(json.dumps(claimed))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_sqlite_real_processes_share_one_file(tmp_path: Path, clock: FakeClock) -> None:
    path = str(tmp_path / "processes.db")
    store = await SQLiteStore.open(path, clock=clock)
    try:
        for i in range(300):
            await store.job_enqueue(job(f"j{i:03d}", due_at=T0 + i))
        outputs: dict[str, bytes] = {}

        async def run(owner: str) -> None:
            done = await anyio.run_process([sys.executable, "-c", _CLAIM_LOOP, path, owner], cwd=_PROJECT_ROOT)
            outputs[owner] = done.stdout

        async with anyio.create_task_group() as tg:
            for owner in ("p1", "p2", "p3"):
                tg.start_soon(run, owner)
        claimed = [job_id for out in outputs.values() for job_id in json.loads(out)]
        assert sorted(claimed) == [f"j{i:03d}" for i in range(300)]  # each job exactly once
        assert await store.kv_get("claims") == "300"  # no lost counter updates either
    finally:
        await store.aclose()


async def test_sqlite_file_uses_wal(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "wal.db"
    store = await SQLiteStore.open(str(path), clock=clock)
    await store.aclose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_concurrent_enqueues_share_one_transaction(tmp_path: Path, clock: FakeClock) -> None:
    """Group commit: enqueues waiting together are written in one transaction, so a job that
    fails inside it (an integer SQLite can't store) fails every caller of that batch, and none
    of its jobs is stored."""
    store = await SQLiteStore.open(str(tmp_path / "gw.db"), clock=clock)
    try:
        jobs = [job(f"j{i}") for i in range(5)]
        jobs[2].max_attempts = 2**70

        async def enqueue(j: Job) -> BaseException | None:
            try:
                await store.job_enqueue(j)
            except OverflowError as exc:
                return exc
            return None

        results: list[BaseException | None] = [None] * len(jobs)

        async def run(i: int) -> None:
            results[i] = await enqueue(jobs[i])

        async with anyio.create_task_group() as tg:
            for i in range(len(jobs)):
                tg.start_soon(run, i)
        assert all(isinstance(r, OverflowError) for r in results)
        assert await store.job_list() == []
        _, created = await store.job_enqueue(job("j0"))  # the store is fine afterwards
        assert created is True
    finally:
        await store.aclose()


async def test_commits_survive_power_loss(tmp_path: Path, clock: FakeClock) -> None:
    """An ack follows a committed enqueue, so a commit must reach the disk before it returns:
    WAL with synchronous=NORMAL may lose the last commits on power loss; FULL syncs every commit
    (one sync per group-committed batch of enqueues)."""
    store = await SQLiteStore.open(str(tmp_path / "gw.db"), clock=clock)
    try:
        rows = await store._fetch("PRAGMA synchronous")  # the store's own connection
        assert rows[0][0] == 2  # FULL
    finally:
        await store.aclose()


async def test_concurrent_writes_of_any_kind_share_commits(tmp_path: Path, clock: FakeClock) -> None:
    """Group commit for every write: calls waiting together on the store thread run in one
    transaction, so N concurrent writes cost fewer than N commits (fsyncs), and each is there."""
    store = await SQLiteStore.open(str(tmp_path / "gw.db"), clock=clock)
    transactions = 0

    def trace(c: sqlite3.Connection) -> None:
        def count(statement: str) -> None:
            nonlocal transactions
            # A statement run outside a transaction starts one: a BEGIN, or an autocommit write.
            transactions += 0 if c.in_transaction else 1

        c.set_trace_callback(count)

    try:
        await store._run(trace)
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(store.kv_set, f"k{i}", str(i))
                tg.start_soon(store.doc_put, "apps", f"a{i}", {"i": i})
        await store._run(lambda c: c.set_trace_callback(None))
        assert 1 <= transactions < 40  # one per call before group commit: 80
        assert [await store.kv_get(f"k{i}") for i in range(40)] == [str(i) for i in range(40)]
        assert len(await store.doc_list("apps")) == 40
    finally:
        await store.aclose()


async def test_a_failing_call_in_a_batch_is_undone_alone(tmp_path: Path, clock: FakeClock) -> None:
    """Each call of a batch runs in its own savepoint: one that raises after writing leaves no
    trace and its caller alone gets the error; the calls around it are committed."""
    store = await SQLiteStore.open(str(tmp_path / "gw.db"), clock=clock)

    def write_then_fail(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO docs (collection, key, doc) VALUES ('apps', 'bad', '{}')")
        raise sqlite3.IntegrityError("refused")

    outcomes: dict[str, BaseException | None] = {}

    async def run(name: str) -> None:
        try:
            if name == "bad":
                await store._run(write_then_fail, write=True)
            else:
                await store.doc_put("apps", name, {"n": name})
            outcomes[name] = None
        except sqlite3.IntegrityError as exc:
            outcomes[name] = exc

    try:
        async with anyio.create_task_group() as tg:
            for name in ("a", "b", "bad", "c", "d"):
                tg.start_soon(run, name)
        assert isinstance(outcomes.pop("bad"), sqlite3.IntegrityError)
        assert outcomes == {"a": None, "b": None, "c": None, "d": None}
        assert await store.doc_get("apps", "bad") is None
        assert sorted(d["n"] for d in await store.doc_list("apps")) == ["a", "b", "c", "d"]
    finally:
        await store.aclose()


@pytest.mark.parametrize("inline", [True, False], ids=["on the loop", "on the store thread"])
async def test_a_batch_of_new_jobs_is_one_insert_stepped_once(tmp_path: Path, clock: FakeClock, inline: bool) -> None:
    """Every sqlite3 step hands the GIL to the event loop and back: a batch of new jobs is one
    INSERT without RETURNING (one step, whatever the rows), its row count telling that all went in."""
    store = await SQLiteStore.open(str(tmp_path / "gw.db"), clock=clock, inline_budget=60.0 if inline else None)
    on_loop: list[str] = []
    on_thread: list[str] = []
    try:
        if store._inline is not None:
            store._inline._connection().set_trace_callback(on_loop.append)
        await store._run(lambda c: c.set_trace_callback(on_thread.append))
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(store.job_enqueue, job(f"j{i}", key=f"k{i}"))
        await store._run(lambda c: c.set_trace_callback(None))
        inserts = [s for s in (on_loop if inline else on_thread) if s.startswith("INSERT INTO jobs")]
        assert len(inserts) == 1 and "RETURNING" not in inserts[0]  # on the connection it was meant for
        assert len(await store.job_list()) == 20
    finally:
        await store.aclose()


async def test_a_batch_meeting_a_taken_key_is_undone_and_written_again(tmp_path: Path, clock: FakeClock) -> None:
    """When some row of a batch is taken, the quick insert is rolled back and the batch written
    row-aware: each new job once, the taken key's caller gets the existing job, no duplicate."""
    store = await SQLiteStore.open(str(tmp_path / "gw.db"), clock=clock)
    try:
        first, _ = await store.job_enqueue(job("old", key="taken"))
        results: dict[str, tuple[Job, bool]] = {}

        async def enqueue(j: Job) -> None:
            results[j.id] = await store.job_enqueue(j)

        async with anyio.create_task_group() as tg:
            for j in [job("a", key="ka"), job("b", key="taken"), job("c")]:
                tg.start_soon(enqueue, j)
        assert results["a"][1] is True and results["c"][1] is True
        assert results["b"] == (first, False)
        assert sorted(j.id for j in await store.job_list()) == ["a", "c", "old"]
    finally:
        await store.aclose()
