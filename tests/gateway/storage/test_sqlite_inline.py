"""SQLite: new jobs committed on the event loop's thread (`_inline_writer`) while the file is free and
commits are quick, and handed to the store thread otherwise, without the loop ever waiting on a lock."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from gateway.clock import FakeClock
from gateway.settings import Settings
from gateway.storage._inline_writer import COOL_DOWN, DEFAULT_BUDGET, InlineWriter
from gateway.storage.base import Job
from gateway.storage.connect import open_store
from gateway.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


def job(job_id: str) -> Job:
    return Job(id=job_id, kind="test", payload={"n": job_id}, due_at=T0)


def stored_ids(path: Path) -> list[str]:
    """The jobs in the file, as another connection (another process) reads them."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return sorted(row[0] for row in conn.execute("SELECT id FROM jobs"))


@contextlib.asynccontextmanager
async def store_thread_held(store: SQLiteStore):  # type: ignore[no-untyped-def]
    """The store thread busy in a call of the test's until the block ends."""
    entered, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(30)

    held = asyncio.ensure_future(store._run(hold))
    assert await asyncio.to_thread(entered.wait, 10)
    try:
        yield
    finally:
        release.set()
        await held


async def test_new_jobs_are_committed_on_the_loop_while_the_store_thread_is_busy(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "gw.db"
    store = await SQLiteStore.open(str(path), clock=clock)
    try:
        async with store_thread_held(store):
            with anyio.fail_after(5):  # through the store thread, this would wait for `hold`
                results = await asyncio.gather(store.job_enqueue(job("a")), store.job_enqueue(job("b")))
            assert [created for _, created in results] == [True, True]
            assert stored_ids(path) == ["a", "b"]  # committed, for every other connection to see
    finally:
        await store.aclose()


async def test_a_write_locked_file_sends_new_jobs_to_the_store_thread_and_the_loop_runs_on(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "gw.db"
    store = await SQLiteStore.open(str(path), clock=clock)
    other = sqlite3.connect(path, isolation_level=None)  # another process's writer, say
    try:
        other.execute("BEGIN IMMEDIATE")
        enqueue = asyncio.ensure_future(store.job_enqueue(job("a")))
        # The loop goes on turning while the enqueue waits for the lock: a connection waiting on
        # the loop's thread would hold it for the store's whole 10 s busy timeout.
        with anyio.fail_after(5):
            for _ in range(20):
                await anyio.sleep(0.01)
        assert not enqueue.done()
        other.execute("COMMIT")
        with anyio.fail_after(10):
            _, created = await enqueue
        assert created and stored_ids(path) == ["a"]
    finally:
        other.close()
        await store.aclose()


async def test_the_inline_connection_syncs_every_commit(tmp_path: Path, clock: FakeClock) -> None:
    store = await SQLiteStore.open(str(tmp_path / "gw.db"), clock=clock)
    try:
        await store.job_enqueue(job("a"))
        assert store._inline is not None
        conn = store._inline._connection()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, as the store thread's
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # checkpoints off the loop
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0  # a locked file answers at once
    finally:
        await store.aclose()


@pytest.mark.parametrize("path", [":memory:", "file::memory:", ""])
async def test_a_store_with_no_file_behind_it_never_writes_inline(path: str, clock: FakeClock) -> None:
    """In memory (however it is spelt) or a private temporary database: SQLite gives a second
    connection a database of its own, so nothing may be written through one."""
    store = await SQLiteStore.open(path, clock=clock)
    try:
        assert store._inline is None
        await store.job_enqueue(job("a"))
        assert [j.id for j in await store.job_list()] == ["a"]
    finally:
        await store.aclose()


class SteppingClock(FakeClock):
    """Each `monotonic()` read moves time on by `step` (a commit that takes `step` seconds)."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def monotonic(self) -> float:
        value = super().monotonic()
        self.advance(self.step)
        return value


def writer_on(path: Path, clock: FakeClock, **kwargs: object) -> InlineWriter:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
    return InlineWriter(str(path), clock=clock, **kwargs)  # type: ignore[arg-type]


def test_slow_commits_send_the_next_ones_to_the_store_thread_until_the_cool_down_ends(tmp_path: Path) -> None:
    clock = SteppingClock(step=0.0005)
    writer = writer_on(tmp_path / "w.db", clock, budget=0.002, checkpoint=lambda resume: resume())
    try:
        for i in range(5):
            assert writer.execute("INSERT INTO t VALUES (?)", [f"quick {i}"]) is True
        clock.step = 0.004  # a commit now and then a little over the 2 ms budget moves the average little
        assert writer.execute("INSERT INTO t VALUES (?)", ["a little slow"]) is True
        clock.step = 0.0005
        assert writer.execute("INSERT INTO t VALUES (?)", ["quick again"]) is True
        clock.step = 0.05  # one long stall: the average is over the budget at once
        assert writer.execute("INSERT INTO t VALUES (?)", ["stalled"]) is True  # it was written
        clock.step = 0.0
        assert writer.execute("INSERT INTO t VALUES (?)", ["later"]) is False  # the store thread's now
        clock.advance(COOL_DOWN)
        assert writer.execute("INSERT INTO t VALUES (?)", ["again"]) is True  # the average starts afresh
    finally:
        writer.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "w.db")) as conn:
        written = [v for (v,) in conn.execute("SELECT v FROM t")]
    assert written == [*(f"quick {i}" for i in range(5)), "a little slow", "quick again", "stalled", "again"]


def test_only_the_first_thread_writes_through_it(tmp_path: Path) -> None:
    writer = writer_on(tmp_path / "w.db", FakeClock(), budget=0.002, checkpoint=lambda resume: resume())
    try:
        assert writer.execute("INSERT INTO t VALUES (?)", ["loop"]) is True
        elsewhere: list[bool] = []
        thread = threading.Thread(target=lambda: elsewhere.append(writer.execute("INSERT INTO t VALUES (?)", ["x"])))
        thread.start()
        thread.join()
        assert elsewhere == [False]
    finally:
        writer.close()


def test_a_checkpoint_is_asked_for_every_so_many_bytes_and_writes_wait_for_it(tmp_path: Path) -> None:
    asked: list[Callable[[], None]] = []
    writer = writer_on(tmp_path / "w.db", FakeClock(), budget=0.002, checkpoint=asked.append, checkpoint_bytes=1000)
    try:
        for _ in range(4):
            assert writer.execute("INSERT INTO t VALUES (?)", ["x" * 300]) is True
        assert len(asked) == 1  # after 1,200 bytes
        # Until the store thread has checkpointed, writes go there, behind the checkpoint.
        assert writer.execute("INSERT INTO t VALUES (?)", ["x" * 300]) is False
        asked[0]()
        for _ in range(4):
            assert writer.execute("INSERT INTO t VALUES (?)", ["x" * 300]) is True
        assert len(asked) == 2
    finally:
        writer.close()


async def test_the_wal_starts_over_under_a_steady_stream_of_new_jobs(tmp_path: Path, clock: FakeClock) -> None:
    """Checkpoints run between writes, so they finish and the WAL is reused from its start: ~24 MB
    of new jobs leave a WAL of a few checkpoint intervals (4 MB each), not of all the rows."""
    path = tmp_path / "gw.db"
    store = await SQLiteStore.open(str(path), clock=clock)
    try:
        body = "x" * 8000
        for n in range(60):
            await asyncio.gather(
                *(store.job_enqueue(Job(id=f"j{n}-{i}", kind="test", payload={"b": body})) for i in range(50))
            )
        assert len(await store.job_list(limit=5)) == 5
        assert (tmp_path / "gw.db-wal").stat().st_size < 12 << 20  # (the last close removes it)
    finally:
        await store.aclose()


async def test_the_setting_turns_it_off_or_sets_its_budget(tmp_path: Path, clock: FakeClock) -> None:
    assert Settings.from_env({}).sqlite_inline_budget == DEFAULT_BUDGET  # one default, the store's
    assert Settings.from_env({"GATEWAY_SQLITE_INLINE_COMMIT_MS": "0"}).sqlite_inline_budget is None
    assert Settings.from_env({"GATEWAY_SQLITE_INLINE_COMMIT_MS": "5"}).sqlite_inline_budget == 0.005
    on = await open_store(f"sqlite:///{tmp_path / 'on.db'}", clock=clock, sqlite_inline_budget=0.005)
    try:
        assert isinstance(on, SQLiteStore) and on._inline is not None and on._inline._budget == 0.005
    finally:
        await on.aclose()
    off = await open_store(f"sqlite:///{tmp_path / 'off.db'}", clock=clock, sqlite_inline_budget=None)
    try:
        assert isinstance(off, SQLiteStore) and off._inline is None
        async with store_thread_held(off):  # every write waits for the store thread now
            enqueue = asyncio.ensure_future(off.job_enqueue(job("a")))
            await anyio.sleep(0.05)
            assert not enqueue.done()
        await enqueue
    finally:
        await off.aclose()


async def test_a_checkpoint_queued_among_other_store_calls_still_checkpoints(tmp_path: Path, clock: FakeClock) -> None:
    """The store thread runs the calls waiting together in one transaction, where SQLite refuses a
    checkpoint: the checkpoint the inline writer asks for must run outside it, or it never happens."""
    path = tmp_path / "gw.db"
    store = await SQLiteStore.open(str(path), clock=clock)
    try:
        await store.job_enqueue(job("inline"))  # in the WAL only: the inline connection never checkpoints
        checkpointed = asyncio.Event()
        async with store_thread_held(store):  # so the calls below wait together, and run as one batch
            before = asyncio.ensure_future(store.kv_set("before", "1"))
            await asyncio.sleep(0)
            store._checkpoint_soon(checkpointed.set)
            after = asyncio.ensure_future(store.kv_set("after", "1"))
            await asyncio.sleep(0)
        await asyncio.gather(before, after)
        with anyio.fail_after(10):
            await checkpointed.wait()
        # The database file alone (without its WAL) holds the job once the checkpoint ran.
        copy = tmp_path / "copy.db"
        copy.write_bytes(path.read_bytes())
        assert stored_ids(copy) == ["inline"]
    finally:
        await store.aclose()
