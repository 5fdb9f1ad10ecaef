"""Group commit: concurrent writes of one kind share one store transaction (or round trip).

`GroupCommit(start)` collects the items submitted while a batch is being written and writes them
together as the next batch, so under load N concurrent callers cost one transaction instead of N,
and alone a caller waits for no timer: its batch starts on the next turn of the event loop (the
callers of that same turn join it). Each caller returns only once its batch was written, so what
it promises next (an ack) follows a durable write.

`start(items, done)` begins writing a batch and, on the event loop, calls `done` once with one
outcome per item, in order (a result, or an exception for that caller alone, say a duplicate id),
or with one exception if the batch as a whole failed (every caller in it gets that exception).
Driven by that callback rather than by a writer task, a finished batch hands its callers their
outcomes and starts the next batch in the same turn of the loop: under load, a task in between
would add a turn to every ack and to every batch's start. `GroupCommit.awaiting(write)` is the
same over an async `write(items)` that returns the outcomes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeAlias, TypeVar

__all__ = ["Done", "GroupCommit"]

_I = TypeVar("_I")
_R = TypeVar("_R")

MAX_BATCH = 256  # items per transaction: bounds how long one batch holds the write lock

Done: TypeAlias = Callable[[Sequence[_R | Exception] | BaseException], None]  # called on the loop, once


class GroupCommit(Generic[_I, _R]):
    def __init__(self, start: Callable[[Sequence[_I], Done[_R]], None], *, max_batch: int = MAX_BATCH) -> None:
        self._start = start
        self._max_batch = max_batch
        self._pending: list[tuple[_I, asyncio.Future[_R]]] = []
        self._writing = False  # a batch is being written (or its start is scheduled)
        self._idle_waiters: list[asyncio.Future[None]] = []

    @classmethod
    def awaiting(
        cls, write: Callable[[Sequence[_I]], Awaitable[Sequence[_R | Exception]]], *, max_batch: int = MAX_BATCH
    ) -> GroupCommit[_I, _R]:
        """Group commit over `write(items)`, which returns one outcome per item."""
        return cls(_Writer(write).start, max_batch=max_batch)

    async def submit(self, item: _I) -> _R:
        """Write `item` with whatever else is waiting; its outcome once the batch is written."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_R] = loop.create_future()
        self._pending.append((item, future))
        if not self._writing:
            self._writing = True
            loop.call_soon(self._next)  # the callers of this same turn join the batch
        # A caller that stops waiting (its client left) cancels its own future only: the batch goes on.
        return await future

    async def wait_idle(self) -> None:
        """Return once everything submitted so far has been written (before closing the store)."""
        while self._writing:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    def _next(self) -> None:
        """Start writing the next batch, or become idle if nothing is waiting."""
        if not self._pending:
            self._writing = False
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            return
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        try:
            self._start([item for item, _ in batch], lambda outcomes: self._finished(batch, outcomes))
        except Exception as exc:  # not even started: this batch failed as a whole
            self._finished(batch, exc)

    def _finished(
        self, batch: list[tuple[_I, asyncio.Future[_R]]], outcomes: Sequence[_R | Exception] | BaseException
    ) -> None:
        if isinstance(outcomes, Exception):  # the batch as a whole failed: every caller in it hears why
            outcomes = [outcomes] * len(batch)
        if isinstance(outcomes, BaseException):  # the loop is shutting down: written or not, nobody knows
            for _, future in self._pending + batch:
                future.cancel()
            self._pending.clear()
        else:
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        self._next()  # the next batch starts in this same turn


class _Writer(Generic[_I, _R]):
    """`start` over an async `write`: one task writes batch after batch while they come.

    The next batch is started by `done` from inside the task, so the task goes on to write it in
    the same turn of the loop, where a task per batch would only start in the next turn.
    """

    def __init__(self, write: Callable[[Sequence[_I]], Awaitable[Sequence[_R | Exception]]]) -> None:
        self._write = write
        self._batches: list[tuple[Sequence[_I], Done[_R]]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self, items: Sequence[_I], done: Done[_R]) -> None:
        self._batches.append((items, done))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="store-group-commit")

    async def _drain(self) -> None:
        try:
            while self._batches:
                items, done = self._batches.pop(0)
                try:
                    outcomes: Sequence[_R | Exception] | BaseException = await self._write(items)
                except BaseException as exc:  # the batch failed, or the loop is shutting down
                    outcomes = exc
                done(outcomes)  # which may start the next batch: this loop writes it
                if isinstance(outcomes, BaseException) and not isinstance(outcomes, Exception):
                    raise outcomes
        finally:
            self._task = None
