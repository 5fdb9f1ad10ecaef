"""A lease in the store: at most one replica holds it; it lapses `ttl` seconds after its last renewal.

Discord allows one gateway session per bot token to receive each message; two replicas both
connected would answer everything twice. So the replica that holds the token's lease connects,
the others wait, and when the holder dies its lease runs out and a waiting replica takes it over.

Built on the store's atomic operations the host offers (`Host.store`, gateway/host/services.py):
take with `kv_set_if_absent`, renew with `kv_expire_if_equals`, release with `kv_delete_if_equals`,
so a replica never renews or releases a lease another one holds.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket

from gateway.host.services import LeaseStore

__all__ = ["ConnectionLease", "lease_key", "new_owner"]


def lease_key(platform: str, token: str) -> str:
    """The store key of a bot token's lease; the token itself is never stored."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"bots:lease:{platform}:{digest}"


def new_owner() -> str:
    """A holder name unique to this process: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class ConnectionLease:
    """One lease key and the name this process holds it under."""

    def __init__(self, store: LeaseStore, key: str, *, ttl: float, owner: str | None = None) -> None:
        if ttl <= 0:
            raise ValueError("the lease TTL must be positive")
        self.store = store
        self.key = key
        self.ttl = ttl
        self.owner = owner or new_owner()

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this process now holds it."""
        return await self.store.kv_set_if_absent(self.key, self.owner, ttl=self.ttl)

    async def renew(self) -> bool:
        """Extend the lease by `ttl`; False when this process no longer holds it."""
        return await self.store.kv_expire_if_equals(self.key, self.owner, self.ttl)

    async def release(self) -> bool:
        """Give the lease up (only if still held by this process), so another replica takes over at once."""
        return await self.store.kv_delete_if_equals(self.key, self.owner)

    async def holder(self) -> str | None:
        """Who holds the lease now, if anyone."""
        return await self.store.kv_get(self.key)
