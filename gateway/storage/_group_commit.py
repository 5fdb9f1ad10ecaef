"""Group commit: concurrent writes of one kind share one store transaction (or round trip).

`GroupCommit(write)` collects the items submitted while a batch is being written and writes them
together as the next batch, so under load N concurrent callers cost one transaction instead of N,
and alone a caller waits for no timer: its batch starts on the next turn of the event loop (the
callers of that same turn join it). `write(items)` returns one outcome per item, in order: a
result, or an exception for that caller alone (say, a duplicate id). If `write` itself raises,
the whole batch failed and every caller in it gets that exception. Each caller returns only once
its batch was written, so what it promises next (an ack) follows a durable write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

_I = TypeVar("_I")
_R = TypeVar("_R")

MAX_BATCH = 256  # items per transaction: bounds how long one batch holds the write lock


class GroupCommit(Generic[_I, _R]):
    def __init__(
        self, write: Callable[[Sequence[_I]], Awaitable[Sequence[_R | Exception]]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[_I, asyncio.Future[_R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: _I) -> _R:
        """Write `item` with whatever else is waiting; its outcome once the batch is written."""
        future: asyncio.Future[_R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain(), name="store-group-commit")
        # A caller that stops waiting (its client left) cancels its own future only: the batch goes on.
        return await future

    async def wait_idle(self) -> None:
        """Return once everything submitted so far has been written (before closing the store)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    outcomes = await self._write([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # the loop is shutting down: the batch may or may not be written
                    for _, future in self._pending + batch:
                        future.cancel()
                    self._pending.clear()
                    raise
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._writer = None
