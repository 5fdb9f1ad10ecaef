"""Admin API routes: apps, endpoints, request logs, plugins and jobs, with an OpenAPI document.

Each route is declared once with its body and response models; the OpenAPI document is built
from the same table, so it cannot drift from the handlers.

Every route acts on one workspace (`gateway.admin.principal`): a workspace token's own, or the
one the operator names with `?workspace=` (default `default`). What belongs to another workspace
is not found (404, so its existence is not revealed); a viewer token's every write (any method but
GET) is 403; routes marked `operator_only` (workspaces, tokens) are 403 to workspace tokens.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import gateway
from gateway.admin import configroutes as c, difyplugins as dp, pluginrows as rows, schemas as s, usage as u, usecases
from gateway.admin.overview import overview
from gateway.admin.principal import CALLER, Caller, Principal, caller
from gateway.delivery.callback_jobs import callback_target
from gateway.exceptions import BadRequest, NotFound, PermissionDenied, Unauthorized, ValidationFailed
from gateway.host.runtime import Gateway
from gateway.plugin import ActionResult
from gateway.records.admintokens import AdminTokenIn, AdminTokenService
from gateway.records.apps import AppIn, AppService, AppUpdate
from gateway.records.endpoints import EndpointOptions, EndpointRecord
from gateway.records.workspaces import DEFAULT_WORKSPACE, WorkspaceIn
from gateway.security.boundedjson import check_json_bounds
from gateway.usage.budgets import BudgetIn, BudgetSpec
from gateway.usage.report import parse_day

__all__ = ["ADMIN_ROUTES", "admin_routes", "openapi_document"]

Handler = Callable[[Request, Gateway, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class AdminRoute:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    query: tuple[str, ...] = ()
    operator_only: bool = False  # workspaces and tokens: the operator token only


async def _authorize(request: Request, gw: Gateway, route: AdminRoute) -> Caller:
    """The request's Caller, or 403 (a viewer's write, a workspace token on an operator route) or
    404 (a workspace that doesn't exist or isn't the token's)."""
    principal = request.scope.get("auth")
    if not isinstance(principal, Principal):  # only without AdminAuthMiddleware in front
        raise Unauthorized("a valid admin token is required (Authorization: Bearer ...)")
    if route.operator_only and not principal.operator:
        raise PermissionDenied("this needs the operator token (GATEWAY_ADMIN_TOKEN)")
    if route.method != "GET" and not principal.can_write:
        raise PermissionDenied("a viewer token can't change anything")
    asked = request.query_params.get("workspace")
    if principal.workspace is None:
        workspace = asked or DEFAULT_WORKSPACE
        if not route.operator_only:
            await gw.workspaces.require(workspace)
    else:
        workspace = principal.workspace
        if asked not in (None, workspace):
            raise NotFound(f"no workspace named {asked!r}")
    return Caller(principal, workspace)


async def _endpoint_of(request: Request, gw: Gateway) -> EndpointRecord:
    """The path's endpoint, if it belongs to the caller's workspace (NotFound otherwise)."""
    return await gw.endpoints.get(request.path_params["id"], workspace=caller(request).workspace)


async def _parse(request: Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    raw = await request.body()
    if not raw.strip():
        raw = b"{}"
    check_json_bounds(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors: list[dict[str, object]] = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()
        ]
        raise ValidationFailed("the request body is invalid", errors=errors) from None


def _limit(request: Request, default: int = 50, maximum: int = 1000) -> int:
    raw = request.query_params.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit()):  # str.isdigit() alone accepts '²', which int() refuses
        raise BadRequest("limit must be a positive integer")
    return max(1, min(int(raw), maximum))


# -- handlers -------------------------------------------------------------------------------------


async def list_plugins(request: Request, gw: Gateway, _: None) -> Any:
    return await rows.plugin_listing(gw, paths=caller(request).principal.operator)


async def list_apps(request: Request, gw: Gateway, _: None) -> Any:
    return {"apps": [AppService.public(a) for a in await gw.apps.all(caller(request).workspace)]}


async def add_app(request: Request, gw: Gateway, body: AppIn) -> Any:
    who = caller(request)
    return AppService.public(await gw.apps.add(body, workspace=who.workspace, guarded=not who.principal.operator))


async def show_app(request: Request, gw: Gateway, _: None) -> Any:
    return AppService.public(await gw.apps.get(request.path_params["name"], workspace=caller(request).workspace))


async def update_app(request: Request, gw: Gateway, body: AppUpdate) -> Any:
    who = caller(request)
    guarded = not who.principal.operator  # a workspace token's base URL must pass the upstream guard
    return AppService.public(
        await gw.apps.update(request.path_params["name"], body, workspace=who.workspace, guarded=guarded)
    )


async def remove_app(request: Request, gw: Gateway, _: None) -> Any:
    workspace = caller(request).workspace
    await usecases.remove_app(request.path_params["name"], apps=gw.apps, endpoints=gw.endpoints, workspace=workspace)
    return {"deleted": request.path_params["name"]}


async def check_app(request: Request, gw: Gateway, _: None) -> Any:
    info = await gw.apps.check(request.path_params["name"], workspace=caller(request).workspace)
    return {"ok": True, "info": info}


async def list_endpoints(request: Request, gw: Gateway, _: None) -> Any:
    return {"endpoints": [gw.endpoints.public(e) for e in await gw.endpoints.all(caller(request).workspace)]}


async def create_endpoint(request: Request, gw: Gateway, body: s.EndpointIn) -> Any:
    await gw.dify_runtime.find(body.plugin)  # a Dify plugin installed or connected through another replica
    record, url, shown = await gw.endpoints.create_with_secrets(
        body.plugin,
        body.apps,
        body.settings,
        name=body.name,
        options=EndpointOptions(body.rate_limit_per_minute, body.log_bodies, body.max_body_bytes),
        workspace=caller(request).workspace,
        guarded=not caller(request).principal.operator,  # a workspace token's URLs must pass the upstream guard
    )
    return {**gw.endpoints.public(record), "url": url, "secrets": shown}


async def show_endpoint(request: Request, gw: Gateway, _: None) -> Any:
    return gw.endpoints.public(await _endpoint_of(request, gw))


async def update_endpoint(request: Request, gw: Gateway, body: s.EndpointUpdate) -> Any:
    current = await _endpoint_of(request, gw)
    options = None
    fields = body.model_fields_set & {"rate_limit_per_minute", "log_bodies", "max_body_bytes"}
    if fields:
        o = current.options
        options = EndpointOptions(
            body.rate_limit_per_minute if "rate_limit_per_minute" in fields else o.rate_limit_per_minute,
            body.log_bodies if "log_bodies" in fields and body.log_bodies is not None else o.log_bodies,
            body.max_body_bytes if "max_body_bytes" in fields else o.max_body_bytes,
        )
    record = await gw.endpoints.update(
        current.id,
        settings=body.settings,
        unset=body.unset,
        apps=body.apps,
        name=body.name,
        options=options,
        guarded=not caller(request).principal.operator,
    )
    return gw.endpoints.public(record)


async def disable_endpoint(request: Request, gw: Gateway, _: None) -> Any:
    return gw.endpoints.public(await gw.endpoints.set_enabled((await _endpoint_of(request, gw)).id, False))


async def enable_endpoint(request: Request, gw: Gateway, _: None) -> Any:
    return gw.endpoints.public(await gw.endpoints.set_enabled((await _endpoint_of(request, gw)).id, True))


async def rotate_endpoint(request: Request, gw: Gateway, body: s.RotateIn) -> Any:
    record, url = await gw.endpoints.rotate((await _endpoint_of(request, gw)).id, grace=body.grace_seconds)
    return {**gw.endpoints.public(record), "url": url}


async def delete_endpoint(request: Request, gw: Gateway, _: None) -> Any:
    current = await _endpoint_of(request, gw)
    record = await usecases.delete_endpoint(current.id, endpoints=gw.endpoints, requests=gw.requests, store=gw.store)
    return {"deleted": record.id}


async def endpoint_action(request: Request, gw: Gateway, body: s.ActionIn) -> Any:
    result = await usecases.run_action(
        request.path_params["id"],
        request.path_params["action"],
        body.args,
        endpoints=gw.endpoints,
        registry=gw.registry,
        contexts=gw.contexts,
        workspace=caller(request).workspace,
    )
    if isinstance(result, ActionResult):
        return {"result": result.data, "ok": result.ok, "events": result.events, "text": result.text}
    return {"result": result}


async def endpoint_requests(request: Request, gw: Gateway, _: None) -> Any:
    record = await _endpoint_of(request, gw)
    return {"requests": await gw.requests.list(record.id, _limit(request))}


async def list_jobs(request: Request, gw: Gateway, _: None) -> Any:
    state = request.query_params.get("state")
    if state not in (None, "queued", "running", "done", "dead"):
        raise BadRequest("state must be one of queued, running, done, dead")
    who = caller(request)
    jobs = await usecases.list_jobs(
        store=gw.store,
        endpoints=gw.endpoints,
        workspace=who.workspace,
        operator=who.principal.operator,
        state=state,  # type: ignore[arg-type]
        limit=_limit(request, 100),
    )
    return {"jobs": [s.job_out(j, callback_target(gw.box, j)) for j in jobs]}


async def _job_of(request: Request, gw: Gateway) -> str:
    """The path's job id, if the job belongs to the caller's workspace (NotFound otherwise)."""
    who = caller(request)
    job = await usecases.find_job(
        request.path_params["id"],
        store=gw.store,
        endpoints=gw.endpoints,
        workspace=who.workspace,
        operator=who.principal.operator,
    )
    return job.id


async def show_job(request: Request, gw: Gateway, _: None) -> Any:
    job = await gw.store.job_get(await _job_of(request, gw))
    if job is None:
        raise NotFound("no such job")
    return s.job_out(job, callback_target(gw.box, job))


async def replay_job(request: Request, gw: Gateway, _: None) -> Any:
    job_id = await _job_of(request, gw)
    if not await gw.store.job_replay(job_id, gw.clock.time()):
        raise BadRequest("only a dead job can be replayed")
    gw.queue.notify()
    job = await gw.store.job_get(job_id)
    assert job is not None
    return s.job_out(job, callback_target(gw.box, job))


async def show_overview(request: Request, gw: Gateway, _: None) -> Any:
    who = caller(request)
    return await overview(gw, workspace=who.workspace, operator=who.principal.operator)


async def whoami(request: Request, gw: Gateway, _: None) -> Any:
    who = caller(request)
    return {"role": who.principal.role, "workspace": who.workspace, "token_id": who.principal.token_id}


async def list_workspaces(request: Request, gw: Gateway, _: None) -> Any:
    return {"workspaces": [w.to_doc() for w in await gw.workspaces.all()]}


async def create_workspace(request: Request, gw: Gateway, body: WorkspaceIn) -> Any:
    return (await gw.workspaces.create(body)).to_doc()


async def delete_workspace(request: Request, gw: Gateway, _: None) -> Any:
    name = request.path_params["name"]
    await usecases.delete_workspace(gw, name)
    return {"deleted": name}


async def list_tokens(request: Request, gw: Gateway, _: None) -> Any:
    records = await gw.admin_tokens.all(request.query_params.get("workspace"))
    return {"tokens": [AdminTokenService.public(r, gw.clock.time()) for r in records]}


async def create_token(request: Request, gw: Gateway, body: AdminTokenIn) -> Any:
    record, token = await usecases.create_token(body, workspaces=gw.workspaces, tokens=gw.admin_tokens)
    return {**AdminTokenService.public(record, gw.clock.time()), "token": token}


async def revoke_token(request: Request, gw: Gateway, _: None) -> Any:
    record = await gw.admin_tokens.revoke(request.path_params["id"])
    return AdminTokenService.public(record, gw.clock.time())


async def usage_report(request: Request, gw: Gateway, _: None) -> Any:
    query = request.query_params
    start, end = parse_day(query.get("from"), "from"), parse_day(query.get("to"), "to")
    return await gw.usage.report.query(
        by=query.get("by", "app"), start=start, end=end, workspace=caller(request).workspace
    )


async def list_budgets(request: Request, gw: Gateway, _: None) -> Any:
    return {"budgets": [b.public() for b in await gw.usage.budgets.all(caller(request).workspace)]}


async def set_budget(request: Request, gw: Gateway, body: BudgetSpec) -> Any:
    budget = BudgetIn(**body.model_dump(), workspace=caller(request).workspace)
    return (await usecases.set_budget(budget, workspaces=gw.workspaces, budgets=gw.usage.budgets)).public()


async def delete_budget(request: Request, gw: Gateway, _: None) -> Any:
    budget = await gw.usage.budgets.get(request.path_params["id"])
    if budget is None or budget.workspace != caller(request).workspace:
        raise NotFound("no such budget")
    await gw.usage.budgets.delete(budget.id)
    return {"deleted": budget.id}


ADMIN_ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute("GET", "/plugins", list_plugins, "List installed plugins", response=rows.PluginListing),
    AdminRoute(  # installed code serves every workspace: the operator's call
        "POST",
        "/plugins",
        dp.install,
        "Install a Dify plugin",
        response=rows.DifyPluginOut,
        status=201,
        operator_only=True,
    ),
    AdminRoute(  # up to 50 MiB and signature checks on the CPU, of use only before an install
        "POST",
        "/plugins/verify",
        dp.verify,
        "Verify a package's signature",
        response=rows.Verified,
        operator_only=True,
    ),
    AdminRoute("GET", "/plugins/{author}/{name}", dp.show, "Show a Dify plugin", response=rows.DifyPluginOut),
    AdminRoute(
        "PUT",
        "/plugins/{author}/{name}",
        dp.upgrade,
        "Upgrade a Dify plugin",
        response=rows.DifyPluginOut,
        operator_only=True,
    ),
    AdminRoute(
        "DELETE",
        "/plugins/{author}/{name}",
        dp.remove,
        "Remove a Dify plugin",
        response=rows.RemovedPlugin,
        operator_only=True,
    ),
    AdminRoute("GET", "/apps", list_apps, "List Dify apps", response=s.AppList),
    AdminRoute("POST", "/apps", add_app, "Register a Dify app", AppIn, s.AppOut, 201),
    AdminRoute("GET", "/apps/{name}", show_app, "Show an app", response=s.AppOut),
    AdminRoute("PATCH", "/apps/{name}", update_app, "Change an app", AppUpdate, s.AppOut),
    AdminRoute("DELETE", "/apps/{name}", remove_app, "Remove an app", response=s.Deleted),
    AdminRoute("POST", "/apps/{name}/check", check_app, "Prove the app key works", response=s.AppCheck),
    AdminRoute("GET", "/endpoints", list_endpoints, "List endpoints", response=s.EndpointList),
    AdminRoute("POST", "/endpoints", create_endpoint, "Mint an endpoint", s.EndpointIn, s.EndpointOut, 201),
    AdminRoute("GET", "/endpoints/{id}", show_endpoint, "Show an endpoint", response=s.EndpointOut),
    AdminRoute("PATCH", "/endpoints/{id}", update_endpoint, "Change an endpoint", s.EndpointUpdate, s.EndpointOut),
    AdminRoute("DELETE", "/endpoints/{id}", delete_endpoint, "Delete an endpoint", response=s.Deleted),
    AdminRoute("POST", "/endpoints/{id}/disable", disable_endpoint, "Disable an endpoint", response=s.EndpointOut),
    AdminRoute("POST", "/endpoints/{id}/enable", enable_endpoint, "Enable an endpoint", response=s.EndpointOut),
    AdminRoute("POST", "/endpoints/{id}/rotate", rotate_endpoint, "Rotate the URL", s.RotateIn, s.EndpointOut),
    AdminRoute(
        "GET",
        "/endpoints/{id}/requests",
        endpoint_requests,
        "Recent requests",
        response=s.RequestList,
        query=("limit",),
    ),
    AdminRoute(
        "POST", "/endpoints/{id}/actions/{action}", endpoint_action, "Run a plugin action", s.ActionIn, s.ActionOut
    ),
    AdminRoute(
        "GET", "/jobs", list_jobs, "List jobs (state=dead: dead letters)", response=s.JobList, query=("state", "limit")
    ),
    AdminRoute("GET", "/jobs/{id}", show_job, "Show a job", response=s.JobOut),
    AdminRoute("POST", "/jobs/{id}/replay", replay_job, "Replay a dead job", response=s.JobOut),
    AdminRoute("GET", "/usage", usage_report, "Usage and cost totals", response=u.UsageOut, query=u.USAGE_QUERY),
    AdminRoute("GET", "/budgets", list_budgets, "List monthly budgets", response=u.BudgetList),
    AdminRoute("PUT", "/budgets", set_budget, "Set a monthly budget", BudgetSpec, u.BudgetOut),
    AdminRoute("DELETE", "/budgets/{id}", delete_budget, "Delete a budget", response=s.Deleted),
    AdminRoute("GET", "/whoami", whoami, "The token's role and the workspace it acts on", response=s.WhoAmI),
    AdminRoute("GET", "/workspaces", list_workspaces, "List workspaces", response=s.WorkspaceList, operator_only=True),
    AdminRoute(
        "POST",
        "/workspaces",
        create_workspace,
        "Create a workspace",
        WorkspaceIn,
        s.WorkspaceOut,
        201,
        operator_only=True,
    ),
    AdminRoute(
        "DELETE",
        "/workspaces/{name}",
        delete_workspace,
        "Delete an empty workspace and its tokens",
        response=s.Deleted,
        operator_only=True,
    ),
    AdminRoute(
        "GET",
        "/tokens",
        list_tokens,
        "List workspace tokens (never the tokens themselves)",
        response=s.TokenList,
        query=("workspace",),
        operator_only=True,
    ),
    AdminRoute(
        "POST",
        "/tokens",
        create_token,
        "Create a workspace token (shown once)",
        AdminTokenIn,
        s.TokenCreated,
        201,
        operator_only=True,
    ),
    AdminRoute(
        "DELETE", "/tokens/{id}", revoke_token, "Revoke a workspace token", response=s.TokenOut, operator_only=True
    ),
    AdminRoute("GET", "/overview", show_overview, "Health, traffic per minute, answers, jobs", response=s.Overview),
    # -- key rotation, configuration as code (gateway/admin/configroutes.py) --
    AdminRoute("POST", "/apps/{name}/keys", c.add_app_key, "Rotate the app key (checked first)", c.AddKeyIn, s.AppOut),
    AdminRoute("DELETE", "/apps/{name}/keys/previous", c.retire_app_key, "Retire the previous key", response=s.AppOut),
    AdminRoute(
        "POST",
        "/endpoints/{id}/secrets/rotate",
        c.rotate_endpoint_secret,
        "Rotate a secret",
        c.RotateSecretIn,
        s.EndpointOut,
    ),
    AdminRoute(
        "POST",
        "/endpoints/{id}/secrets/retire",
        c.retire_endpoint_secret,
        "Retire old secrets",
        c.RetireSecretIn,
        s.EndpointOut,
    ),
    AdminRoute("GET", "/config", c.export_config, "Export the configuration", response=c.ExportOut),
    AdminRoute("POST", "/config/apply", c.apply_config, "Apply a configuration file", c.ApplyIn, c.ApplyOut),
    AdminRoute("GET", "/snapshots", c.list_snapshots, "List snapshots", response=c.SnapshotList),
    AdminRoute("POST", "/snapshots", c.save_snapshot, "Save a snapshot", c.SnapshotIn, status=201),
    AdminRoute(
        "GET",
        "/snapshots/{tag}/diff/{other}",
        c.diff_snapshots,
        "Diff two snapshots",
        response=c.ApplyOut,
    ),
    AdminRoute(
        "POST",
        "/snapshots/restore",
        c.restore_snapshot,
        "Restore a snapshot",
        c.SnapshotIn,
        c.ApplyOut,
    ),
    AdminRoute("DELETE", "/snapshots/{tag}", c.delete_snapshot, "Delete a snapshot", response=s.Deleted),
)


def _endpoint(route: AdminRoute) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        gw: Gateway = request.state.gateway
        request.scope[CALLER] = await _authorize(request, gw, route)
        body = await _parse(request, route.body)
        result = await route.handler(request, gw, body)
        return JSONResponse(result, route.status)

    return handle


def admin_routes() -> list[BaseRoute]:
    # One Route per method: Starlette answers 405 when a path matches but none of its methods do.
    routes: list[BaseRoute] = [Route("/openapi.json", openapi_endpoint, methods=["GET"])]
    routes += [Route(route.path, _endpoint(route), methods=[route.method]) for route in ADMIN_ROUTES]
    return routes


async def openapi_endpoint(request: Request) -> Response:
    return Response(json.dumps(openapi_document()), media_type="application/json")


WORKSPACE_PARAMETER = {
    "name": "workspace",
    "in": "query",
    "required": False,
    "description": "The workspace the operator token acts on (default: default); a workspace token's own",
    "schema": {"type": "string"},
}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the admin API, built from `ADMIN_ROUTES`."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error = {"description": "Error", "content": {"application/json": {"schema": ref(s.ErrorOut)}}}
    for route in ADMIN_ROUTES:
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "responses": {"401": error, "403": error, "404": error, "422": error},
        }
        params = [
            {"name": p[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for p in route.path.split("/")
            if p.startswith("{")
        ]
        params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in route.query]
        if not route.operator_only:
            params.append(WORKSPACE_PARAMETER)
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {"required": False, "content": {"application/json": {"schema": ref(route.body)}}}
        ok: dict[str, Any] = {"description": "OK"}
        if route.response is not None:
            ok["content"] = {"application/json": {"schema": ref(route.response)}}
        op["responses"][str(route.status)] = ok
        paths.setdefault("/admin/api" + route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "dify-gateway admin API", "version": gateway.__version__},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
