"""The app's `tenant_access_token`, fetched from app_id/app_secret and shared by every replica.

The token lives two hours. It is kept in the endpoint's storage, sealed with a key derived from
the app secret (storage is not where secrets go in the clear), until ten minutes before it
expires; one replica at a time fetches a new one, under the endpoint's lock
(`ctx.storage.lock`), and the others find it when they get the lock. A call refused because
the token is no longer valid (99991663 and its kind) asks for a token other than the refused
one (`get(stale=…)`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from gateway.plugin import Clock, Storage

__all__ = ["Fetch", "TenantToken", "TenantTokens", "TOKEN_KEY"]

TOKEN_KEY = "tenant_access_token"
MARGIN_S = 600.0  # a token is replaced this long before it expires
LOCK_TTL_S = 30.0
LOCK_WAIT_S = 20.0


@dataclass(frozen=True, slots=True)
class TenantToken:
    token: str
    expires_at: float  # wall-clock seconds


#: Fetches a fresh token: (token, seconds it lives).
Fetch = Callable[[], Awaitable[tuple[str, float]]]


class TenantTokens:
    """The token of one app, cached in `storage` (see the module docstring)."""

    def __init__(self, storage: Storage, clock: Clock, app_secret: str, fetch: Fetch) -> None:
        self._storage = storage
        self._clock = clock
        key = hashlib.sha256(b"dify-gateway lark tenant token\0" + app_secret.encode()).digest()
        self._seal = Fernet(base64.urlsafe_b64encode(key))
        self._fetch = fetch
        self.fetched = 0  # tokens this object fetched from Lark

    async def get(self, *, stale: str | None = None, fresh: bool = False) -> TenantToken:
        """A valid token: the cached one unless it is `stale` or near expiry (or `fresh` is asked)."""
        if not fresh and (cached := await self._usable(stale)) is not None:
            return cached
        async with self._storage.lock("tenant-token", ttl=LOCK_TTL_S, wait=LOCK_WAIT_S):
            # Another replica may have fetched one while this one waited for the lock.
            if not fresh and (cached := await self._usable(stale)) is not None:
                return cached
            token, lives = await self._fetch()
            self.fetched += 1
            found = TenantToken(token, self._clock.time() + lives)
            sealed = self._seal.encrypt(json.dumps([found.token, found.expires_at]).encode()).decode()
            await self._storage.set(TOKEN_KEY, sealed, ttl=max(1.0, lives - MARGIN_S))
            return found

    async def _usable(self, stale: str | None) -> TenantToken | None:
        cached = await self._load()
        if cached is None or cached.token == stale or cached.expires_at - MARGIN_S <= self._clock.time():
            return None
        return cached

    async def _load(self) -> TenantToken | None:
        raw = await self._storage.get(TOKEN_KEY)
        if not raw:
            return None
        try:
            doc: Any = json.loads(self._seal.decrypt(raw.encode()))
        except (InvalidToken, ValueError):  # sealed with another app secret, or not ours
            return None
        if isinstance(doc, list) and len(doc) == 2 and isinstance(doc[0], str) and isinstance(doc[1], int | float):
            return TenantToken(doc[0], float(doc[1]))
        return None
