"""Claims: at most one job acts on a platform's message, whatever the number of events about it."""

from __future__ import annotations

from gateway.plugin.context import Storage

__all__ = ["claim"]


async def claim(storage: Storage, key: str, owner: str, *, ttl: float) -> bool:
    """Take `key` for `owner` (a job id) for `ttl` seconds; True also when `owner` took it before
    (a rerun of the same job), False when another owner holds it."""
    if await storage.set_if_absent(key, owner, ttl=ttl):
        return True
    return await storage.get(key) == owner
