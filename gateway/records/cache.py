"""`ReadCache`: records read from the store for the request path, one read per key at a time.

A burst of requests for one endpoint used to miss the cache together (it was empty, or its entry
had just expired) and each read and decoded its own copy of the same records, kept for as long as
its request ran (an answer stream: seconds) and each building its own plugin context from them.
Here the first miss reads; every request arriving while that read runs waits for it and shares
the value. A value read again equal to the one it replaces keeps the old object, so whatever is
built from a record by identity (the plugin contexts, gateway/host/context_factory.py) stays
built while nothing changed.

Staleness is bounded exactly as before: an entry is trusted for `ttl` seconds after its read
*started* (a read finishing late does not extend it), and `clear()` (a change made in this
process) drops the entries and cuts loose the reads in flight: what they return is handed to the
callers that were waiting for them but is never cached, and a caller arriving after the clear
starts a new read. Changes made by another replica or the CLI are seen within `ttl` seconds.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from gateway.clock import Clock

__all__ = ["ReadCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadCache(Generic[K, V]):
    """Values by key, each trusted for `ttl` seconds, at most `size` kept (then all dropped)."""

    def __init__(self, clock: Clock, *, ttl: float, size: int) -> None:
        self._clock = clock
        self._ttl = ttl
        self._size = size
        self._entries: dict[K, tuple[float, V]] = {}  # key -> (trusted until, value)
        self._reads: dict[K, asyncio.Task[V]] = {}  # the read in flight for a key

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """The cached value of `key`, or what `read()` returns (shared with concurrent callers)."""
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self._clock.monotonic():
            return hit[1]
        task = self._reads.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read(key, read))
            self._reads[key] = task
            task.add_done_callback(functools.partial(self._read_done, key))
        # A waiter cancelled (its client left) leaves the read running for the others.
        return await asyncio.shield(task)

    def clear(self) -> None:
        """Forget every value, and let no read already started fill the cache."""
        self._entries.clear()
        self._reads.clear()

    def knows(self, key: K) -> bool:
        """Whether `key` has a value kept (fresh or not) or a read in flight."""
        return key in self._entries or key in self._reads

    async def _read(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        until = self._clock.monotonic() + self._ttl
        value = await read()
        if self._reads.get(key) is not asyncio.current_task():
            return value  # cleared while reading: possibly stale, handed out but not kept
        previous = self._entries.get(key)
        if previous is not None and previous[1] == value:
            value = previous[1]  # unchanged: the object already handed out stays the one
        elif len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (until, value)
        return value

    def _read_done(self, key: K, task: asyncio.Task[V]) -> None:
        if self._reads.get(key) is task:
            del self._reads[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failed read reaches its waiters, not the loop's log
