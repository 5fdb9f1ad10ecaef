"""Who an admin request comes from, and which workspace it acts on.

The operator (`GATEWAY_ADMIN_TOKEN`) may act on any workspace, naming it with the `workspace`
query parameter (`?workspace=team-a`, default `default`); a workspace token acts on its own
workspace only. `AdminAuthMiddleware` puts the `Principal` in the ASGI scope under `auth`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.records.admintokens import AdminTokenRecord

__all__ = ["OPERATOR", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    role: str  # "operator", "admin" or "viewer"
    workspace: str | None = None  # None: the operator, who may act on any
    token_id: str | None = None  # the workspace token's id; None for the operator

    @property
    def operator(self) -> bool:
        return self.workspace is None

    @property
    def can_write(self) -> bool:
        return self.role != "viewer"

    @property
    def log_id(self) -> str:
        """What the access log says made the request: `operator` or the token's id, never the token."""
        return self.token_id or "operator"

    @classmethod
    def of_token(cls, record: AdminTokenRecord) -> Principal:
        return cls(role=record.role, workspace=record.workspace, token_id=record.id)


OPERATOR = Principal(role="operator")
