"""Console sessions: an opaque id in an HttpOnly cookie, the session itself in the store.

The store keeps only a hash of the id (a leaked store dump can't be replayed as a cookie), with
the session's CSRF token and who logged in, under a TTL: a session expires on its own and `end`
deletes it at once, on every replica. Lookups compare nothing secret by hand: the id's hash is the key.

Who logged in is the operator (the admin token) or a workspace token, kept by its id only (never the
token). A token's session is only as alive as its token: every lookup reads the token's record, so a
revoked or expired token ends its sessions at their next request, on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from gateway.admin.principal import OPERATOR, Principal
from gateway.clock import Clock
from gateway.records.admintokens import AdminTokenService
from gateway.storage.base import Store

__all__ = ["COOKIE", "CSRF_HEADER", "ConsoleSession", "ConsoleSessions"]

COOKIE = "gw_console"
CSRF_HEADER = "x-csrf-token"
_PREFIX = "console:session:"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    csrf: str
    expires_at: float
    principal: Principal = OPERATOR  # who logged in: the operator, or a workspace token

    def csrf_matches(self, sent: str) -> bool:
        return hmac.compare_digest(sent.encode(), self.csrf.encode())


class ConsoleSessions:
    def __init__(self, store: Store, clock: Clock, tokens: AdminTokenService, *, ttl: float) -> None:
        self._store = store
        self._clock = clock
        self._tokens = tokens
        self.ttl = ttl

    async def start(self, principal: Principal = OPERATOR) -> tuple[str, ConsoleSession]:
        """A new session of `principal`: its id (for the cookie only) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = ConsoleSession(secrets.token_urlsafe(32), self._clock.time() + self.ttl, principal)
        value = {"csrf": session.csrf, "expires_at": session.expires_at, "token_id": principal.token_id}
        await self._store.kv_set(self._key(session_id), json.dumps(value), ttl=self.ttl)
        return session_id, session

    async def get(self, session_id: str) -> ConsoleSession | None:
        """The live session of `session_id`, or None (unknown, expired, ended, or its token is no more)."""
        if not session_id or len(session_id) > 256:
            return None
        raw = await self._store.kv_get(self._key(session_id))
        if raw is None:
            return None
        data = json.loads(raw)
        expires_at = float(data["expires_at"])
        if expires_at <= self._clock.time():
            return None
        principal = OPERATOR
        token_id = data.get("token_id")  # absent in sessions started before tokens could log in
        if token_id is not None:
            record = await self._tokens.active(str(token_id))
            if record is None:  # revoked, expired or deleted with its workspace: the session ends with it
                await self.end(session_id)
                return None
            principal = Principal.of_token(record)
        return ConsoleSession(str(data["csrf"]), expires_at, principal)

    async def end(self, session_id: str) -> None:
        if session_id and len(session_id) <= 256:
            await self._store.kv_delete(self._key(session_id))

    @staticmethod
    def _key(session_id: str) -> str:
        return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()
