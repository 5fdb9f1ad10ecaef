"""Workspaces: the teams sharing one gateway, each with its own apps, endpoints and admin tokens.

Apps and endpoints carry the name of their workspace; what hangs off an endpoint (plugin storage,
jobs, request log, usage) belongs to the endpoint's workspace. The workspace `default` always
exists and can't be deleted: records kept before workspaces existed read as belonging to it, so
an upgrade moves nothing and changes no URL.

Deleting a workspace and creating an app or an endpoint in it take the workspace's lock (a
`LeaseLock` in the store, so across replicas too) in `in_use`: a creation either lands first
(and the delete, seeing it, refuses) or waits and finds the workspace gone (404), never leaving
an endpoint in a workspace that no longer exists. Creating an admin token or setting a budget
takes the same lock (`gateway.admin.usecases`), since the delete takes those with it.

A workspace is deleted only when it holds no apps and no endpoints. There is deliberately no
`--force`: deleting an endpoint kills its live URL for good (a new one can't get the same token),
so a typo in a workspace name must not take a team's bots down; the operator deletes what is in
it first, one deliberate command at a time. Its admin tokens and budgets go with it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.clock import Clock
from gateway.exceptions import BadRequest, Conflict, LockBusy, NotFound
from gateway.storage.base import Store
from gateway.storage.lock import LeaseLock

__all__ = ["DEFAULT_WORKSPACE", "WORKSPACE_PATTERN", "WorkspaceIn", "WorkspaceRecord", "WorkspaceService"]

DEFAULT_WORKSPACE = "default"
WORKSPACE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # no '.', ':' or '/': names are parts of store keys
COLLECTION = "workspaces"
LOCK_TTL = 10.0  # a crashed holder keeps the workspace locked this long at most
LOCK_WAIT = 5.0


class WorkspaceIn(BaseModel):
    model_config = ConfigDict(strict=True)

    name: str = Field(pattern=WORKSPACE_PATTERN, description="Short name, e.g. 'support-team'")


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    name: str
    created_at: float

    def to_doc(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> WorkspaceRecord:
        return cls(name=doc["name"], created_at=doc["created_at"])


class WorkspaceService:
    """Creates, lists and deletes workspaces. `default` is implicit: always listed, never stored."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(self, workspace: WorkspaceIn) -> WorkspaceRecord:
        if workspace.name == DEFAULT_WORKSPACE:
            raise Conflict("the workspace 'default' always exists")
        record = WorkspaceRecord(workspace.name, self._clock.time())
        if not await self._store.doc_create(COLLECTION, record.name, record.to_doc()):
            raise Conflict(f"a workspace named {workspace.name!r} already exists")
        return record

    async def all(self) -> list[WorkspaceRecord]:
        stored = [WorkspaceRecord.from_doc(doc) for doc in await self._store.doc_list(COLLECTION)]
        return [WorkspaceRecord(DEFAULT_WORKSPACE, 0.0), *sorted(stored, key=lambda w: w.name)]

    async def find(self, name: str) -> WorkspaceRecord | None:
        """The workspace `name`, or None."""
        if name == DEFAULT_WORKSPACE:
            return WorkspaceRecord(DEFAULT_WORKSPACE, 0.0)
        if re.fullmatch(WORKSPACE_PATTERN, name) is None:  # a name no workspace can have costs no store lookup
            return None
        doc = await self._store.doc_get(COLLECTION, name)
        return None if doc is None else WorkspaceRecord.from_doc(doc)

    async def exists(self, name: str) -> bool:
        return await self.find(name) is not None

    async def require(self, name: str) -> WorkspaceRecord:
        """The workspace `name`; NotFound unless it exists."""
        found = await self.find(name)
        if found is None:
            raise NotFound(f"no workspace named {name!r}")
        return found

    @contextlib.asynccontextmanager
    async def in_use(self, name: str) -> AsyncIterator[WorkspaceRecord]:
        """Hold the workspace `name` (NotFound unless it exists) while the block creates something in
        it or deletes it. `default` is never deleted, so it needs no lock."""
        if name == DEFAULT_WORKSPACE:
            yield await self.require(name)
            return
        lock = LeaseLock(self._store, f"wslock:{name}", ttl=LOCK_TTL)
        try:
            async with lock.held(self._clock, wait=LOCK_WAIT, poll=0.02):
                yield await self.require(name)
        except LockBusy:
            raise Conflict(f"workspace {name!r} is being changed by someone else; try again") from None

    async def delete(self, name: str, *, apps: list[str], endpoints: list[str]) -> None:
        """Delete an empty workspace; `apps` and `endpoints` are what it still holds (refused if any).
        Call it inside `in_use(name)`, having listed them there."""
        if name == DEFAULT_WORKSPACE:
            raise BadRequest("the workspace 'default' can't be deleted")
        await self.require(name)
        held = [f"apps {', '.join(apps)}"] if apps else []
        held += [f"endpoints {', '.join(endpoints)}"] if endpoints else []
        if held:
            raise Conflict(f"workspace {name!r} still holds {' and '.join(held)}; delete them first")
        await self._store.doc_delete(COLLECTION, name)
