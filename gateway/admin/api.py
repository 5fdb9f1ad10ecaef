"""Admin API routes: apps, endpoints, request logs, plugins and jobs, with an OpenAPI document.

Each route is declared once with its body and response models; the OpenAPI document is built
from the same table, so it cannot drift from the handlers.
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
from gateway.admin import configroutes as c, schemas as s, usecases
from gateway.exceptions import BadRequest, NotFound, ValidationFailed
from gateway.host.runtime import Gateway
from gateway.plugin import ActionResult
from gateway.records.apps import AppIn, AppService, AppUpdate
from gateway.records.endpoints import EndpointOptions
from gateway.security.boundedjson import check_json_bounds

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
    return {"plugins": [s.plugin_out(p) for p in gw.registry.plugins()]}


async def list_apps(request: Request, gw: Gateway, _: None) -> Any:
    return {"apps": [AppService.public(a) for a in await gw.apps.all()]}


async def add_app(request: Request, gw: Gateway, body: AppIn) -> Any:
    return AppService.public(await gw.apps.add(body))


async def show_app(request: Request, gw: Gateway, _: None) -> Any:
    return AppService.public(await gw.apps.get(request.path_params["name"]))


async def update_app(request: Request, gw: Gateway, body: AppUpdate) -> Any:
    return AppService.public(await gw.apps.update(request.path_params["name"], body))


async def remove_app(request: Request, gw: Gateway, _: None) -> Any:
    await usecases.remove_app(request.path_params["name"], apps=gw.apps, endpoints=gw.endpoints)
    return {"deleted": request.path_params["name"]}


async def check_app(request: Request, gw: Gateway, _: None) -> Any:
    info = await gw.apps.check(request.path_params["name"])
    return {"ok": True, "info": info}


async def list_endpoints(request: Request, gw: Gateway, _: None) -> Any:
    return {"endpoints": [gw.endpoints.public(e) for e in await gw.endpoints.all()]}


async def create_endpoint(request: Request, gw: Gateway, body: s.EndpointIn) -> Any:
    record, url, shown = await gw.endpoints.create_with_secrets(
        body.plugin,
        body.apps,
        body.settings,
        name=body.name,
        options=EndpointOptions(body.rate_limit_per_minute, body.log_bodies, body.max_body_bytes),
    )
    return {**gw.endpoints.public(record), "url": url, "secrets": shown}


async def show_endpoint(request: Request, gw: Gateway, _: None) -> Any:
    return gw.endpoints.public(await gw.endpoints.get(request.path_params["id"]))


async def update_endpoint(request: Request, gw: Gateway, body: s.EndpointUpdate) -> Any:
    current = await gw.endpoints.get(request.path_params["id"])
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
        current.id, settings=body.settings, unset=body.unset, apps=body.apps, name=body.name, options=options
    )
    return gw.endpoints.public(record)


async def disable_endpoint(request: Request, gw: Gateway, _: None) -> Any:
    return gw.endpoints.public(await gw.endpoints.set_enabled(request.path_params["id"], False))


async def enable_endpoint(request: Request, gw: Gateway, _: None) -> Any:
    return gw.endpoints.public(await gw.endpoints.set_enabled(request.path_params["id"], True))


async def rotate_endpoint(request: Request, gw: Gateway, body: s.RotateIn) -> Any:
    record, url = await gw.endpoints.rotate(request.path_params["id"], grace=body.grace_seconds)
    return {**gw.endpoints.public(record), "url": url}


async def delete_endpoint(request: Request, gw: Gateway, _: None) -> Any:
    record = await usecases.delete_endpoint(
        request.path_params["id"], endpoints=gw.endpoints, requests=gw.requests, store=gw.store
    )
    return {"deleted": record.id}


async def endpoint_action(request: Request, gw: Gateway, body: s.ActionIn) -> Any:
    result = await usecases.run_action(
        request.path_params["id"],
        request.path_params["action"],
        body.args,
        endpoints=gw.endpoints,
        registry=gw.registry,
        contexts=gw.contexts,
    )
    if isinstance(result, ActionResult):
        return {"result": result.data, "ok": result.ok, "events": result.events}
    return {"result": result}


async def endpoint_requests(request: Request, gw: Gateway, _: None) -> Any:
    record = await gw.endpoints.get(request.path_params["id"])
    return {"requests": await gw.requests.list(record.id, _limit(request))}


async def list_jobs(request: Request, gw: Gateway, _: None) -> Any:
    state = request.query_params.get("state")
    if state not in (None, "queued", "running", "done", "dead"):
        raise BadRequest("state must be one of queued, running, done, dead")
    jobs = await gw.store.job_list(state=state, limit=_limit(request, 100))  # type: ignore[arg-type]
    return {"jobs": [s.job_out(j) for j in jobs]}


async def show_job(request: Request, gw: Gateway, _: None) -> Any:
    job = await gw.store.job_get(request.path_params["id"])
    if job is None:
        raise NotFound("no such job")
    return s.job_out(job)


async def replay_job(request: Request, gw: Gateway, _: None) -> Any:
    job_id = request.path_params["id"]
    if not await gw.store.job_replay(job_id, gw.clock.time()):
        raise BadRequest("only a dead job can be replayed")
    gw.queue.notify()
    job = await gw.store.job_get(job_id)
    assert job is not None
    return s.job_out(job)


ADMIN_ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute("GET", "/plugins", list_plugins, "List installed plugins", response=s.PluginList),
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
    AdminRoute(
        "GET", "/config", c.export_config, "Export the configuration", response=c.ExportOut, query=("workspace",)
    ),
    AdminRoute("POST", "/config/apply", c.apply_config, "Apply a configuration file", c.ApplyIn, c.ApplyOut),
    AdminRoute("GET", "/snapshots", c.list_snapshots, "List snapshots", response=c.SnapshotList, query=("workspace",)),
    AdminRoute(
        "POST", "/snapshots", c.save_snapshot, "Save a snapshot", c.SnapshotIn, query=("workspace",), status=201
    ),
    AdminRoute(
        "GET",
        "/snapshots/{tag}/diff/{other}",
        c.diff_snapshots,
        "Diff two snapshots",
        response=c.ApplyOut,
        query=("workspace",),
    ),
    AdminRoute(
        "POST",
        "/snapshots/restore",
        c.restore_snapshot,
        "Restore a snapshot",
        c.SnapshotIn,
        c.ApplyOut,
        query=("workspace",),
    ),
    AdminRoute(
        "DELETE", "/snapshots/{tag}", c.delete_snapshot, "Delete a snapshot", response=s.Deleted, query=("workspace",)
    ),
)


def _endpoint(route: AdminRoute) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        body = await _parse(request, route.body)
        result = await route.handler(request, request.state.gateway, body)
        return JSONResponse(result, route.status)

    return handle


def admin_routes() -> list[BaseRoute]:
    # One Route per method: Starlette answers 405 when a path matches but none of its methods do.
    routes: list[BaseRoute] = [Route("/openapi.json", openapi_endpoint, methods=["GET"])]
    routes += [Route(route.path, _endpoint(route), methods=[route.method]) for route in ADMIN_ROUTES]
    return routes


async def openapi_endpoint(request: Request) -> Response:
    return Response(json.dumps(openapi_document()), media_type="application/json")


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
            "responses": {"401": error, "404": error, "422": error},
        }
        params = [
            {"name": p[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for p in route.path.split("/")
            if p.startswith("{")
        ]
        params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in route.query]
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
