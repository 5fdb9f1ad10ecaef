"""Console sessions: an opaque id in an HttpOnly cookie, the session itself in the store.

The store keeps only a hash of the id (a leaked store dump can't be replayed as a cookie), with
the session's CSRF token and who logged in, under a TTL: a session expires on its own and `end`
deletes it at once, on every replica. Lookups compare nothing secret by hand: the id's hash is the key.

Who logged in is the operator (the admin token) or a workspace token, and a session stands for it:

- the operator's keeps a fingerprint of the admin token (a hash of its digest) and is dead once the
  gateway runs with another one, so replacing a leaked token also ends the sessions opened with it;
- a workspace token's keeps the token's id only (never the token) and is only as alive as the
  token: every lookup reads the token's record, so a revoked or expired token, or one whose
  workspace is gone, ends its sessions at their next request, on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.admin.principal import OPERATOR, Principal, token_principal
from gateway.clock import Clock
from gateway.console.cookie import COOKIE as COOKIE
from gateway.records.admintokens import AdminTokenService
from gateway.records.workspaces import WorkspaceService
from gateway.storage.base import Store

if TYPE_CHECKING:
    from gateway.host.runtime import Gateway

__all__ = ["COOKIE", "CSRF_HEADER", "ConsoleSession", "ConsoleSessions", "console_sessions"]

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
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        ttl: float,
        operator: bytes,
        tokens: AdminTokenService,
        workspaces: WorkspaceService,
    ) -> None:
        """`operator`: the digest of the admin token (`token_digest`); `tokens` and `workspaces`
        tell whether a workspace token's session still stands."""
        self._store = store
        self._clock = clock
        self.ttl = ttl
        self._operator = hashlib.sha256(b"console-session:" + operator).hexdigest()
        self._tokens = tokens
        self._workspaces = workspaces

    async def start(self, principal: Principal = OPERATOR) -> tuple[str, ConsoleSession]:
        """A new session of `principal`: its id (for the cookie only) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = ConsoleSession(secrets.token_urlsafe(32), self._clock.time() + self.ttl, principal)
        value: dict[str, object] = {"csrf": session.csrf, "expires_at": session.expires_at}
        if principal.token_id is None:
            value["operator"] = self._operator
        else:
            value["token_id"] = principal.token_id
        await self._store.kv_set(self._key(session_id), json.dumps(value), ttl=self.ttl)
        return session_id, session

    async def get(self, session_id: str) -> ConsoleSession | None:
        """The live session of `session_id`, or None (unknown, expired, ended, or whoever opened
        it is no more: another admin token, a revoked or expired workspace token)."""
        if not session_id or len(session_id) > 256:
            return None
        raw = await self._store.kv_get(self._key(session_id))
        if raw is None:
            return None
        data = json.loads(raw)
        expires_at = float(data["expires_at"])
        if expires_at <= self._clock.time():
            return None
        token_id = data.get("token_id")
        if token_id is None:
            if not hmac.compare_digest(str(data.get("operator", "")).encode(), self._operator.encode()):
                return None  # opened with an admin token the gateway no longer has
            return ConsoleSession(str(data["csrf"]), expires_at, OPERATOR)
        principal = await token_principal(await self._tokens.active(str(token_id)), self._workspaces)
        if principal is None:  # revoked, expired, or its workspace is gone: the session ends with it
            await self.end(session_id)
            return None
        return ConsoleSession(str(data["csrf"]), expires_at, principal)

    async def end(self, session_id: str) -> None:
        if session_id and len(session_id) <= 256:
            await self._store.kv_delete(self._key(session_id))

    @staticmethod
    def _key(session_id: str) -> str:
        return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def console_sessions(gateway: Gateway, operator: bytes) -> ConsoleSessions:
    """The sessions of `gateway`'s console; `operator`: the digest of its admin token."""
    return ConsoleSessions(
        gateway.store,
        gateway.clock,
        ttl=gateway.settings.console_session_ttl,
        operator=operator,
        tokens=gateway.admin_tokens,
        workspaces=gateway.workspaces,
    )
