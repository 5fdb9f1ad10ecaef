"""A Dify plugin's key-value storage (`self.session.storage`): in the gateway's store, so every
replica sees it, scoped to the installation (`author/name`, all its endpoints, surviving upgrades)
and bounded by the manifest's `storage.size` (bytes of values, counted like Dify's daemon)."""

from __future__ import annotations

from gateway.exceptions import BadRequest
from gateway.storage.base import Store

__all__ = ["InstallationStorage", "StorageFull"]

MAX_KEY = 256


class StorageFull(BadRequest):
    """A `set` would take the installation past its declared `storage.size`."""


class InstallationStorage:
    """Values are bytes (hex on the wire and in the store)."""

    def __init__(self, store: Store, plugin: str, limit: int) -> None:
        self._store = store
        self._prefix = f"difykv:{plugin}:"
        self._used = f"difykv-used:{plugin}"
        self._limit = limit

    def _key(self, key: str) -> str:
        if not key or len(key) > MAX_KEY:
            raise BadRequest(f"a storage key needs 1 to {MAX_KEY} characters")
        return self._prefix + key

    async def set(self, key: str, value_hex: str) -> None:
        try:
            size = len(bytes.fromhex(value_hex))
        except ValueError:
            raise BadRequest("the storage value is not hex-encoded") from None
        full_key = self._key(key)
        old = await self._store.kv_get(full_key)
        delta = size - (len(old) // 2 if old is not None else 0)
        used = await self._store.kv_incr(self._used, delta)
        if delta > 0 and used > self._limit:
            await self._store.kv_incr(self._used, -delta)
            raise StorageFull(f"storage limit reached: the plugin declared {self._limit} bytes (storage.size)")
        await self._store.kv_set(full_key, value_hex.lower())

    async def get(self, key: str) -> str | None:
        return await self._store.kv_get(self._key(key))

    async def delete(self, key: str) -> None:
        full_key = self._key(key)
        old = await self._store.kv_get(full_key)
        if old is not None and await self._store.kv_delete(full_key):
            await self._store.kv_incr(self._used, -(len(old) // 2))

    async def exists(self, key: str) -> bool:
        return await self._store.kv_get(self._key(key)) is not None
