"""A statement committed on the event loop's own thread, while the database is free and commits are quick.

The SQLite store runs its calls on a store thread (`_store_thread`), so the event loop never waits
on the disk. For the one write on the ack path, a batch of new jobs (one INSERT), that hand-off
costs more than the write: a GIL hand-over to the store thread and one back, and the acks of a
batch waiting for both. On a free database with a disk that syncs in a fraction of a millisecond,
committing the INSERT right on the loop's thread is quicker for everyone, the loop included.

`InlineWriter.execute(sql, params)` does that when it may, and says whether it did:

- **The database is free.** Its connection never waits for a lock (`busy_timeout` 0): when another
  connection (the store thread's, another process's) holds the write lock, nothing is written and
  the caller hands the batch to the store thread, which waits for the lock there.
- **Commits are quick.** When the running average of commit times (each new one weighing
  `WEIGHT`, from zero) passes `budget` seconds (a slow or busy disk, or one long stall), the
  writes after it go to the store thread for `COOL_DOWN` seconds; then the average starts again
  from zero. A commit now and then a little over the budget (the disk flushing its cache) moves
  the average little; a slow disk stalls the loop for a few commits per cool-down at most.
- **Durability is the store's.** The same file, `synchronous=FULL`: the INSERT is on disk when
  `execute` returns True, exactly as on the store thread.
- **Checkpoints stay off the loop.** This connection never checkpoints the WAL itself
  (`wal_autocheckpoint` 0); every `checkpoint_bytes` of rows written it calls `checkpoint(resume)`,
  which has the store thread checkpoint the WAL and call `resume` once done. Until then writes go
  to the store thread, behind the checkpoint: a checkpoint with writes still landing after its
  start could never finish, and the WAL would grow without end instead of starting over.

Only the thread that first used it (the event loop's) writes through it; any other gets False.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from gateway.clock import Clock

__all__ = ["COOL_DOWN", "DEFAULT_BUDGET", "WEIGHT", "InlineWriter"]

DEFAULT_BUDGET = 0.002  # seconds: what an average commit may take here (`GATEWAY_SQLITE_INLINE_COMMIT_MS`)
COOL_DOWN = 10.0  # seconds of store-thread writes once the average commit is over budget
WEIGHT = 0.2  # of each new commit time in the running average
CHECKPOINT_BYTES = 4 << 20  # rows written here between two passive checkpoints (the WAL's default is ~4 MB)


class InlineWriter:
    def __init__(
        self,
        path: str,
        *,
        clock: Clock,
        budget: float,
        checkpoint: Callable[[Callable[[], None]], None],
        checkpoint_bytes: int = CHECKPOINT_BYTES,
    ) -> None:
        self._path = path
        self._clock = clock
        self._budget = budget
        self._checkpoint = checkpoint
        self._checkpoint_bytes = checkpoint_bytes
        self._conn: sqlite3.Connection | None = None
        self._owner: int | None = None  # the thread that writes here (the event loop's)
        self._average = 0.0  # commit seconds, a running average (from 0: a cold first commit decides nothing)
        self._resume_at: float | None = None  # after slow commits: when to try here again
        self._written = 0  # bytes of rows since the last checkpoint
        self._checkpointing = False  # a checkpoint asked for has not finished yet

    def execute(self, sql: str, params: Sequence[Any]) -> bool:
        """Run `sql` (one statement, its own transaction) here if the database is free and commits
        are quick: True once committed. False: nothing was written, use the store thread.

        Raises what the statement raised otherwise (say, `sqlite3.IntegrityError`: nothing written)."""
        if self._checkpointing:
            return False
        if self._resume_at is not None:
            if self._clock.monotonic() < self._resume_at:
                return False
            self._resume_at = None
        if self._owner is None:
            self._owner = threading.get_ident()
        elif self._owner != threading.get_ident():
            return False
        conn = self._connection()
        started = self._clock.monotonic()
        try:
            conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False  # another connection writes: nothing was written here
            raise
        finally:
            self._timed(self._clock.monotonic() - started)
        self._written += sum(len(value) for value in params if isinstance(value, str | bytes))
        if self._written >= self._checkpoint_bytes:
            self._written = 0
            self._checkpointing = True
            self._checkpoint(self._checkpointed)
        return True

    def _checkpointed(self) -> None:
        self._checkpointing = False

    def _timed(self, seconds: float) -> None:
        average = self._average + WEIGHT * (seconds - self._average)
        if average > self._budget:
            self._average = 0.0  # counted afresh after the cool-down
            self._resume_at = self._clock.monotonic() + COOL_DOWN
        else:
            self._average = average

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # timeout=0: SQLite's busy timeout, so a locked file answers at once. isolation_level=None:
            # each statement is its own transaction. check_same_thread off so `close` may run from
            # whichever thread closes the store; `execute` checks the thread.
            conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA synchronous = FULL")  # as the store's: on disk when the commit returns
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn
