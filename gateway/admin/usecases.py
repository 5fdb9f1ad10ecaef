"""Operations the admin API and the CLI share that span more than one service.

Each takes the collaborators it needs (from the `Gateway` container), so the API handler and the
command stay one call each and the rules live in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from gateway.exceptions import BadRequest, NotFound
from gateway.host.context_factory import ContextFactory
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import Gateway
from gateway.plugin import ActionResult
from gateway.records.admintokens import AdminTokenIn, AdminTokenRecord, AdminTokenService
from gateway.records.apps import AppService
from gateway.records.endpoints import EndpointRecord, EndpointService
from gateway.records.requestlog import RequestLog
from gateway.records.workspaces import DEFAULT_WORKSPACE, WorkspaceService
from gateway.storage.base import Job, JobState, Store
from gateway.usage.budgets import Budget, BudgetBook, BudgetIn

__all__ = [
    "create_token",
    "delete_endpoint",
    "delete_workspace",
    "find_job",
    "list_jobs",
    "remove_app",
    "reseal_secrets",
    "run_action",
    "set_budget",
]

# How many of the newest jobs a workspace's job list looks through for its own.
JOB_SCAN_LIMIT = 10_000


async def remove_app(
    name: str, *, apps: AppService, endpoints: EndpointService, workspace: str = DEFAULT_WORKSPACE
) -> None:
    """Remove an app of `workspace`, refusing while endpoints are bound to it."""
    bound = [e.id for e in await endpoints.all(workspace) if name in e.apps]
    await apps.remove(name, bound_to=bound, workspace=workspace)


async def delete_workspace(gw: Gateway, name: str) -> None:
    """Delete an empty workspace with its admin tokens and budgets (refused while it holds apps or
    endpoints). Nothing can be created in it between the look at what it holds and the delete
    (`in_use`; `create_token` and `set_budget` take the same lock)."""
    async with gw.workspaces.in_use(name):
        apps, endpoints = await gw.apps.all(name), await gw.endpoints.all(name)
        await gw.workspaces.delete(name, apps=[a.name for a in apps], endpoints=[e.id for e in endpoints])
        await gw.admin_tokens.delete_workspace(name)
        await gw.usage.budgets.delete_workspace(name)


async def create_token(
    spec: AdminTokenIn, *, workspaces: WorkspaceService, tokens: AdminTokenService
) -> tuple[AdminTokenRecord, str]:
    """A new admin token for `spec.workspace` (NotFound unless it exists), made under the
    workspace's lock, so a delete running at the same time can't leave it behind."""
    async with workspaces.in_use(spec.workspace) as workspace:
        return await tokens.create(spec, workspace_created_at=workspace.created_at)


async def set_budget(data: BudgetIn, *, workspaces: WorkspaceService, budgets: BudgetBook) -> Budget:
    """Set a budget of `data.workspace` (NotFound unless it exists) under the workspace's lock, so a
    delete running at the same time can't leave it behind for a later workspace of that name."""
    async with workspaces.in_use(data.workspace):
        return await budgets.set(data)


def _visible(owner: str | None, workspace: str, operator: bool) -> bool:
    """A job is seen in its endpoint's workspace; one whose endpoint is gone (`owner` None) belongs
    to no workspace any more, and only the operator sees it."""
    return owner == workspace or (owner is None and operator)


async def list_jobs(
    *,
    store: Store,
    endpoints: EndpointService,
    workspace: str,
    operator: bool,
    state: JobState | None,
    limit: int,
) -> list[Job]:
    """The newest `limit` jobs of `workspace`'s endpoints (and, for the operator, orphans).
    Looks through at most the newest `JOB_SCAN_LIMIT` jobs."""
    owners = {e.id: e.workspace for e in await endpoints.all()}
    asked = limit
    while True:
        jobs = await store.job_list(state=state, limit=asked)
        found = [j for j in jobs if _visible(owners.get(j.endpoint_id or ""), workspace, operator)]
        if len(found) >= limit or len(jobs) < asked or asked >= JOB_SCAN_LIMIT:
            return found[:limit]
        asked = min(asked * 4, JOB_SCAN_LIMIT)


async def find_job(job_id: str, *, store: Store, endpoints: EndpointService, workspace: str, operator: bool) -> Job:
    """The job `job_id` if it belongs to `workspace` (or is an orphan and `operator`); NotFound otherwise."""
    job = await store.job_get(job_id)
    owner = None
    if job is not None and job.endpoint_id is not None:
        with contextlib.suppress(NotFound):
            owner = (await endpoints.get(job.endpoint_id)).workspace
    if job is None or not _visible(owner, workspace, operator):
        raise NotFound("no such job")
    return job


async def delete_endpoint(
    endpoint_id: str, *, endpoints: EndpointService, requests: RequestLog, store: Store
) -> EndpointRecord:
    """Delete an endpoint with its request log and its plugin storage."""
    record = await endpoints.delete(endpoint_id)
    await requests.drop(record.id)
    await store.kv_delete_prefix(f"kv:{record.id}:")
    return record


async def reseal_secrets(*, apps: AppService, endpoints: EndpointService) -> dict[str, Any]:
    """After a new GATEWAY_SECRET_KEY was added (newest last): re-encrypt every stored secret
    under it, and list the endpoints whose URL is still signed with an older key."""
    resealed = [app.key for app in await apps.all() if await apps.reseal(app.name, workspace=app.workspace)]
    values, stale_urls = 0, []
    for record in await endpoints.all():
        changed, stale = await endpoints.reseal(record.id)
        values += changed
        if stale:
            stale_urls.append(record.id)
    return {"apps_resealed": resealed, "endpoint_values_resealed": values, "endpoints_to_rotate": stale_urls}


async def run_action(
    endpoint_id: str,
    name: str,
    args: Mapping[str, str],
    *,
    endpoints: EndpointService,
    registry: PluginRegistry,
    contexts: ContextFactory,
    workspace: str | None = None,
) -> str | dict[str, Any] | ActionResult:
    """Run the plugin action `name` on an endpoint (of `workspace`, when given) (CLI
    `dify-gateway PLUGIN ACTION ID`, admin API)."""
    record = await endpoints.get(endpoint_id, workspace=workspace)
    plugin = registry.require(record.plugin)
    action = plugin.actions.get(name)
    if action is None:
        raise NotFound(f"plugin {plugin.name!r} has no action {name!r}")
    unknown = set(args) - set(action.options) - set(action.flags)
    if unknown:
        raise BadRequest(f"unknown options for {name}: {', '.join(sorted(unknown))}")
    not_flags = sorted(flag for flag in action.flags if args.get(flag, "false") not in ("true", "false"))
    if not_flags:
        raise BadRequest(f'{", ".join(not_flags)} of {name} must be "true" or "false"')
    # The endpoint's current context, as its requests get: what an action changes and they keep
    # in `ctx.memory` (the openai plugin's keys) is dropped for them at once.
    return await action.handler(await contexts.for_request(record, plugin), args)
