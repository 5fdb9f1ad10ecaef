"""Workspace admin tokens: a bearer token for one workspace's part of the admin API.

A token is `gwt_<id>_<secret>`: `id` (`at_` + 16 hex) names it in lists and access logs, `secret`
is 256 bits from the CSPRNG. The store keeps only SHA-256 of the whole token (a high-entropy
secret needs no slow hash), compared in constant time; the token is shown once, when created.

Every admin request reads the token's record from the store (one document read, no cache), so a
revocation or an expiry takes effect on every replica at once. Roles: `admin` reads and changes
its workspace, `viewer` only reads it. The operator token (`GATEWAY_ADMIN_TOKEN`) is not one of
these: it manages workspaces and these tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.clock import Clock
from gateway.exceptions import BadRequest, NotFound
from gateway.records.workspaces import WORKSPACE_PATTERN
from gateway.storage.base import Store

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "ROLES",
    "AdminTokenIn",
    "AdminTokenRecord",
    "AdminTokenService",
    "Role",
    "parse_duration",
]

COLLECTION = "admin_tokens"
PREFIX = "gwt_"
ROLES = ("admin", "viewer")
Role = Literal["admin", "viewer"]
MAX_TOKEN_LIFETIME = 5 * 366 * 24 * 3600.0
_TOKEN_ID = re.compile(r"at_[0-9a-f]{16}")
_TOKEN = re.compile(rf"gwt_({_TOKEN_ID.pattern})_[A-Za-z0-9_-]{{43}}")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,9})([smhdw]?)")


def parse_duration(text: str) -> float:
    """`90s`, `15m`, `12h`, `30d`, `2w` or plain seconds, as seconds; BadRequest otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise BadRequest(f"{text!r} is not a duration such as 3600, 90m, 12h, 30d or 2w")
    return float(int(match[1]) * _UNITS[match[2] or "s"])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class AdminTokenIn(BaseModel):
    model_config = ConfigDict(strict=True)

    workspace: str = Field(pattern=WORKSPACE_PATTERN)
    role: Role = "admin"
    expires_in_seconds: float | None = Field(
        default=None, gt=0, le=MAX_TOKEN_LIFETIME, allow_inf_nan=False, description="None: never expires"
    )
    label: str = Field(default="", max_length=100, description="What the token is for, e.g. 'ci'")


@dataclass(frozen=True, slots=True)
class AdminTokenRecord:
    id: str
    workspace: str
    role: Role
    digest: str  # SHA-256 of the whole token, hex
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    label: str = ""
    # When its workspace was created: a token opens that workspace only, not a later one of the same
    # name (None: made before this was kept).
    workspace_created_at: float | None = None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workspace": self.workspace,
            "role": self.role,
            "digest": self.digest,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "label": self.label,
            "workspace_created_at": self.workspace_created_at,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AdminTokenRecord:
        return cls(**doc)


class AdminTokenService:
    """Creates, lists, revokes and checks workspace tokens."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self, spec: AdminTokenIn, *, workspace_created_at: float | None = None
    ) -> tuple[AdminTokenRecord, str]:
        """A new token for `spec.workspace` (which the caller checked exists, created at
        `workspace_created_at`); the token is returned this once."""
        now = self._clock.time()
        expires_at = None if spec.expires_in_seconds is None else now + spec.expires_in_seconds
        for _ in range(5):
            token_id = "at_" + secrets.token_hex(8)
            token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
            record = AdminTokenRecord(
                token_id,
                spec.workspace,
                spec.role,
                _digest(token),
                now,
                expires_at,
                None,
                spec.label,
                workspace_created_at,
            )
            if await self._store.doc_create(COLLECTION, token_id, record.to_doc()):
                return record, token
        raise RuntimeError("could not allocate a token id")  # pragma: no cover - 64 random bits

    async def all(self, workspace: str | None = None) -> list[AdminTokenRecord]:
        records = [AdminTokenRecord.from_doc(doc) for doc in await self._store.doc_list(COLLECTION)]
        return sorted((r for r in records if workspace in (None, r.workspace)), key=lambda r: (r.created_at, r.id))

    async def revoke(self, token_id: str) -> AdminTokenRecord:
        doc = await self._store.doc_get(COLLECTION, token_id)
        if doc is None:
            raise NotFound(f"no admin token {token_id!r}")
        record = AdminTokenRecord.from_doc(doc)
        if record.revoked_at is None:
            record = replace(record, revoked_at=self._clock.time())
            await self._store.doc_put(COLLECTION, token_id, record.to_doc())
        return record

    async def delete_workspace(self, workspace: str) -> int:
        """Delete every token of `workspace` (it is being deleted); returns how many."""
        tokens = await self.all(workspace)
        for record in tokens:
            await self._store.doc_delete(COLLECTION, record.id)
        return len(tokens)

    async def authenticate(self, token: str) -> AdminTokenRecord | None:
        """The active token record `token` opens, or None (malformed, unknown, wrong secret, expired, revoked)."""
        match = _TOKEN.fullmatch(token)
        record = None if match is None else await self.active(match[1])
        if record is None or not hmac.compare_digest(_digest(token), record.digest):
            return None
        return record

    async def active(self, token_id: str) -> AdminTokenRecord | None:
        """The record of `token_id` if that token is still active (not revoked, not expired), else None."""
        if not _TOKEN_ID.fullmatch(token_id):
            return None
        doc = await self._store.doc_get(COLLECTION, token_id)
        if doc is None:
            return None
        record = AdminTokenRecord.from_doc(doc)
        return record if record.active(self._clock.time()) else None

    @staticmethod
    def public(record: AdminTokenRecord, now: float) -> dict[str, Any]:
        """The record as shown to the operator: never the token nor its digest."""
        if record.revoked_at is not None:
            state = "revoked"
        elif record.expires_at is not None and record.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        return {
            "id": record.id,
            "workspace": record.workspace,
            "role": record.role,
            "label": record.label,
            "state": state,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "revoked_at": record.revoked_at,
        }
