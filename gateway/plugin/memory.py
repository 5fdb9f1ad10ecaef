"""`Memory`: what a handler may keep in this process for a short while, on the injected clock.

For values read from storage on a hot path that change seldom (a bot's own identity): the store
stays the truth shared by replicas, the memory spares a round trip per request. Each endpoint's
context has its own (`Context.memory`), built with the context: a change to the endpoint (its
settings, its apps) starts an empty one. Bounded: past `size` keys the oldest goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from gateway.clock import Clock

__all__ = ["Memory"]

DEFAULT_SIZE = 256
T = TypeVar("T")


class Memory:
    """Values kept for `ttl` seconds each, in this process only (never shared, never persisted)::

    bot = await ctx.memory.get_or_load("bot", partial(ctx.storage.get, "bot"), ttl=60.0)
    """

    __slots__ = ("_clock", "_kept", "_size")

    def __init__(self, clock: Clock, *, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._clock = clock
        self._size = size
        self._kept: OrderedDict[str, tuple[float, object]] = OrderedDict()

    def get(self, key: str) -> object | None:
        """The value kept under `key`, or None when there is none or its time is up."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        if kept[0] <= self._clock.monotonic():
            del self._kept[key]
            return None
        return kept[1]

    def set(self, key: str, value: object, *, ttl: float) -> None:
        """Keep `value` under `key` for `ttl` seconds."""
        self._kept[key] = (self._clock.monotonic() + ttl, value)
        self._kept.move_to_end(key)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[T | None]], *, ttl: float) -> T | None:
        """The value kept under `key`, else what `load()` gives, kept for `ttl` seconds. None is not
        kept: what is not there yet is looked for again on the next call."""
        kept = self.get(key)
        if kept is not None:
            return cast("T", kept)
        loaded = await load()
        if loaded is not None:
            self.set(key, loaded, ttl=ttl)
        return loaded

    def forget(self, key: str) -> None:
        self._kept.pop(key, None)

    def __len__(self) -> int:
        return len(self._kept)
