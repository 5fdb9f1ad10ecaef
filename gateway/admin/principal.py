"""Who an admin request comes from, and which workspace it acts on.

The operator (`GATEWAY_ADMIN_TOKEN`) may act on any workspace, naming it with the `workspace`
query parameter (`?workspace=team-a`, default `default`); a workspace token acts on its own
workspace only. `AdminAuthMiddleware` puts the `Principal` in the ASGI scope under `auth`.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from gateway.records.admintokens import AdminTokenRecord
from gateway.records.workspaces import WorkspaceService

__all__ = ["CALLER", "OPERATOR", "Caller", "Principal", "caller", "token_principal"]


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


async def token_principal(record: AdminTokenRecord | None, workspaces: WorkspaceService) -> Principal | None:
    """Who an active workspace token's `record` stands for, or None (no record, or its workspace is
    no longer the one it was made for: a token that outlived its workspace, made while it was being
    deleted, opens neither it nor a later one of its name)."""
    if record is None:
        return None
    found = await workspaces.find(record.workspace)
    if found is None:
        return None
    if record.workspace_created_at is not None and record.workspace_created_at != found.created_at:
        return None
    return Principal.of_token(record)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls (`principal`) and the workspace the call acts on."""

    principal: Principal
    workspace: str


CALLER = "gateway.caller"  # where `_endpoint` keeps the request's Caller in the ASGI scope


def caller(request: Request) -> Caller:
    found = request.scope.get(CALLER)
    assert isinstance(found, Caller), "admin handlers run behind _endpoint"
    return found
