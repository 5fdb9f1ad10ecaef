"""Console sessions: an opaque id in an HttpOnly cookie, the session itself in the store.

The store keeps only a hash of the id (a leaked store dump can't be replayed as a cookie), with
the session's CSRF token, under a TTL: a session expires on its own and `end` deletes it at once,
on every replica. Lookups compare nothing secret by hand: the id's hash is the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.storage.base import Store

__all__ = ["COOKIE", "CSRF_HEADER", "ConsoleSession", "ConsoleSessions"]

COOKIE = "gw_console"
CSRF_HEADER = "x-csrf-token"
_PREFIX = "console:session:"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    csrf: str
    expires_at: float

    def csrf_matches(self, sent: str) -> bool:
        return hmac.compare_digest(sent.encode(), self.csrf.encode())


class ConsoleSessions:
    def __init__(self, store: Store, clock: Clock, *, ttl: float) -> None:
        self._store = store
        self._clock = clock
        self.ttl = ttl

    async def start(self) -> tuple[str, ConsoleSession]:
        """A new session: its id (for the cookie only) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = ConsoleSession(csrf=secrets.token_urlsafe(32), expires_at=self._clock.time() + self.ttl)
        value = json.dumps({"csrf": session.csrf, "expires_at": session.expires_at})
        await self._store.kv_set(self._key(session_id), value, ttl=self.ttl)
        return session_id, session

    async def get(self, session_id: str) -> ConsoleSession | None:
        """The live session of `session_id`, or None (unknown, expired or ended)."""
        if not session_id or len(session_id) > 256:
            return None
        raw = await self._store.kv_get(self._key(session_id))
        if raw is None:
            return None
        data = json.loads(raw)
        session = ConsoleSession(csrf=str(data["csrf"]), expires_at=float(data["expires_at"]))
        return session if session.expires_at > self._clock.time() else None

    async def end(self, session_id: str) -> None:
        if session_id and len(session_id) <= 256:
            await self._store.kv_delete(self._key(session_id))

    @staticmethod
    def _key(session_id: str) -> str:
        return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()
