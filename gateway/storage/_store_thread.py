"""One dedicated thread that runs a backend's blocking calls in order, handing results to the loop.

What `loop.run_in_executor(ThreadPoolExecutor(max_workers=1), ...)` does, at a fraction of its cost
per call: the executor takes a shutdown lock, a semaphore (a Python-level Condition) and wraps two
futures on every submit, and each of those steps fights the store thread for the GIL. Here a call
is one `SimpleQueue.put` (C) and one `call_soon_threadsafe` back.

The calls waiting when the thread turns to the queue are taken together, up to `max_batch`, and
given to `run_batch`, which returns one outcome per call (a result, or the exception that call
raised, wrapped in `Raised`): a backend can run them in one transaction (group commit). Without `run_batch` each runs
on its own. No outcome is handed back before the whole batch has run, so a batch that commits at
its end tells no caller of its write before that commit. A call whose awaiting caller was
cancelled before the thread reached it is skipped, as the executor would.

`post(fn, done)` is the same without a future: `done(outcome)` is called on the loop with the
call's result (or `Raised`), so a caller that hands outcomes on (group commit) does it in that
same turn of the loop rather than in the turn after, when its awaiting task would resume.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["Outcomes", "Raised", "StoreThread", "run_each"]

_T = TypeVar("_T")
# (loop, the caller's future or None, the call, what to run on the loop with the outcome)
_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any] | None", Callable[[], Any], Callable[[Any], None]]


class Raised:
    """The outcome of a call that raised `exc` (a result may itself be an exception object)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


Outcomes = list[Any]  # per call: its result, or `Raised`

MAX_BATCH = 64  # calls per batch: bounds how long one batch's transaction holds the write lock


def run_each(calls: Sequence[Callable[[], Any]]) -> Outcomes:
    """Run every call on its own; its result or its exception."""
    outcomes: Outcomes = []
    for call in calls:
        try:
            outcomes.append(call())
        except BaseException as exc:  # handed to that call's caller, like an executor would
            outcomes.append(Raised(exc))
    return outcomes


class StoreThread:
    def __init__(
        self,
        name: str,
        *,
        run_batch: Callable[[Sequence[Callable[[], Any]]], Outcomes] = run_each,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._name = name
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable[[], _T]) -> _T:
        """Run `fn()` on the thread, after every call submitted before it; its result or exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._put((loop, future, fn, functools.partial(_settle, future)))
        return await future

    def post(self, fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `fn()` on the thread, after every call submitted before it; then `done(outcome)` on
        this loop, the outcome being `fn`'s result or `Raised`. Never skipped."""
        self._put((asyncio.get_running_loop(), None, fn, done))

    def _put(self, call: _Call) -> None:
        if self._thread is None:
            # A daemon: a process that exits without closing its store must not hang on this
            # thread. A transaction cut short by that exit is rolled back by SQLite, and no caller
            # was told it succeeded.
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._calls.put(call)

    def close(self) -> None:
        """Stop the thread once the calls queued so far have run, and wait for it."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Call] = []
            call = self._calls.get()
            while call is not None:
                future = call[1]
                # Read across threads: at worst a cancelled call runs and its result is dropped.
                if future is None or not future.cancelled():
                    batch.append(call)
                # empty() first: get_nowait() on an empty queue raises, and this thread holds the GIL
                # the event loop is waiting for while it builds and catches that exception.
                if len(batch) >= self._max_batch or self._calls.empty():
                    break
                call = self._calls.get_nowait()  # this thread is the queue's only reader: never empty here
            stopping = call is None
            if not batch:
                continue
            try:
                outcomes = self._run_batch([fn for _, _, fn, _ in batch])
            except BaseException as exc:  # the batch as a whole failed: every caller in it hears why
                outcomes = [Raised(exc)] * len(batch)
            for (loop, _, _, done), outcome in zip(batch, outcomes, strict=True):
                try:
                    loop.call_soon_threadsafe(done, outcome)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    pass


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.cancelled():
        return
    if isinstance(outcome, Raised):
        future.set_exception(outcome.exc)
    else:
        future.set_result(outcome)
