"""`ctx.storage` in memory, with TTLs on an injected clock: the storage contract without a store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gateway.clock import Clock
from gateway.plugin import HeldLock, Lease
from gateway.storage.lock import LeaseLock

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """The plugin `Storage` in a dict. Keys expire on `clock` (advance a `VirtualClock` or
    `FakeClock` to expire them); a fenced `set` first checks the run still holds its lease.

    `data` shows what is stored now (expired keys dropped), for assertions.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._values: dict[str, str] = {}
        self._expires: dict[str, float] = {}

    @property
    def data(self) -> dict[str, str]:
        return {key: value for key in list(self._values) if (value := self._live(key)) is not None}

    def ttl(self, key: str) -> float | None:
        """Seconds until `key` expires; None for a key without a TTL or no key."""
        if self._live(key) is None or key not in self._expires:
            return None
        return self._expires[key] - self._clock.monotonic()

    def _live(self, key: str) -> str | None:
        expires = self._expires.get(key)
        if expires is not None and self._clock.monotonic() >= expires:
            del self._values[key], self._expires[key]
        return self._values.get(key)

    def _put(self, key: str, value: str, ttl: float | None) -> None:
        self._values[key] = value
        if ttl is None:
            self._expires.pop(key, None)  # a plain set drops the TTL, like the stores
        else:
            self._expires[key] = self._clock.monotonic() + ttl

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, *, ttl: float | None = None, fence: Lease | None = None) -> None:
        if fence is not None:
            await fence.check()  # LeaseLost once another run took the job over
        self._put(key, value, ttl)

    async def set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl)
        return True

    async def delete(self, key: str) -> bool:
        if self._live(key) is None:
            return False
        del self._values[key]
        self._expires.pop(key, None)
        return True

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        current = self._live(key)
        if current is None:
            self._put(key, str(amount), ttl)  # the TTL applies when the counter is created only
            return amount
        try:
            value = int(current) + amount
        except ValueError:
            raise ValueError(f"the value of {key!r} is not an integer") from None
        self._values[key] = str(value)
        return value

    @contextlib.asynccontextmanager
    async def lock(self, name: str, ttl: float = 30.0, *, wait: float = 10.0) -> AsyncIterator[HeldLock]:
        """The gateway's own `LeaseLock`, on these keys (apart from the plugin's) and this clock."""
        if ttl <= 0 or wait < 0:
            raise ValueError("a lock needs a positive ttl and a wait of 0 or more")
        async with LeaseLock(_Locks(self), name, ttl=ttl).held(self._clock, wait=wait) as held:
            yield held


class _Locks:
    """The lock operations of the storage contract on a `MemoryStorage`, under keys of their own."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage

    @staticmethod
    def _key(key: str) -> str:
        return "\x00lock:" + key

    async def kv_get(self, key: str) -> str | None:
        return self._storage._live(self._key(key))

    async def kv_set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool:
        return await self._storage.set_if_absent(self._key(key), value, ttl=ttl)

    async def kv_expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        if self._storage._live(self._key(key)) != value:
            return False
        self._storage._put(self._key(key), value, ttl)
        return True

    async def kv_delete_if_equals(self, key: str, value: str) -> bool:
        if self._storage._live(self._key(key)) != value:
            return False
        return await self._storage.delete(self._key(key))
