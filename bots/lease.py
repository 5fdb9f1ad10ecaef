"""The bot's connection lease: at most one replica holds it; it lapses `ttl` seconds after its last renewal.

Discord allows one gateway session per bot token to receive each message; two replicas both
connected would answer everything twice. So the replica that holds the token's lease connects,
the others wait, and when the holder dies its lease runs out and a waiting replica takes it over.

The lease is the gateway's one lock across replicas (gateway/storage/lock.py): atomic take,
renewal and owner-checked release on every store backend.
"""

from __future__ import annotations

import hashlib

from gateway.storage.lock import LeaseLock as Lease, new_owner

__all__ = ["Lease", "lease_key", "new_owner"]


def lease_key(platform: str, token: str) -> str:
    """The store key of a bot token's lease; the token itself is never stored."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"bots:lease:{platform}:{digest}"
