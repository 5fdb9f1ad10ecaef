"""One dedicated thread that runs a backend's blocking calls in order, handing results to the loop.

What `loop.run_in_executor(ThreadPoolExecutor(max_workers=1), ...)` does, at a fraction of its cost
per call: the executor takes a shutdown lock, a semaphore (a Python-level Condition) and wraps two
futures on every submit, and each of those steps fights the store thread for the GIL. Here a call
is one `SimpleQueue.put` (C) and one `call_soon_threadsafe` back. A call whose awaiting caller was
cancelled before the thread reached it is skipped, as the executor would.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["StoreThread"]

_T = TypeVar("_T")
_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


class StoreThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable[[], _T]) -> _T:
        """Run `fn()` on the thread, after every call submitted before it; its result or exception."""
        if self._thread is None:
            # A daemon: a process that exits without closing its store must not hang on this
            # thread. A transaction cut short by that exit is rolled back by SQLite, and no caller
            # was told it succeeded.
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._calls.put((loop, future, fn))
        return await future

    def close(self) -> None:
        """Stop the thread once the calls queued so far have run, and wait for it."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, fn = call
            if future.cancelled():  # read across threads: at worst the call runs and its result is dropped
                continue
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller, like an executor would
                _hand_back(loop, future, exc, None)
            else:
                _hand_back(loop, future, None, result)


def _hand_back(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], exc: BaseException | None, result: Any
) -> None:
    def settle() -> None:
        if future.cancelled():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass
