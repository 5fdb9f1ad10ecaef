"""Admin API bodies and answers (pydantic at the I/O boundary)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.plugin import Plugin
from gateway.records.endpoints import MAX_ROTATION_GRACE
from gateway.storage.base import Job

__all__ = [
    "ActionIn",
    "ActionOut",
    "AppCheck",
    "AppList",
    "AppOut",
    "Deleted",
    "EndpointIn",
    "EndpointList",
    "EndpointOut",
    "EndpointUpdate",
    "ErrorOut",
    "JobList",
    "JobOut",
    "Overview",
    "PluginList",
    "RequestList",
    "RotateIn",
    "TokenCreated",
    "TokenList",
    "TokenOut",
    "WhoAmI",
    "WorkspaceList",
    "WorkspaceOut",
    "job_out",
    "plugin_out",
]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


# Inputs are strict (issue 11): `false` is not a number of seconds, `0` is not a boolean, `"5"` is
# not an integer. JSON arrays still fill lists and numbers still fill floats.
STRICT = ConfigDict(strict=True)


class EndpointIn(BaseModel):
    model_config = STRICT

    plugin: str = Field(description="Plugin name, e.g. 'echo', 'slack'")
    apps: list[str] = Field(default_factory=list, description="Names of the Dify apps to bind")
    settings: dict[str, Any] = Field(default_factory=dict, description="Plugin settings (validated by the plugin)")
    name: str = Field(default="", max_length=100)
    rate_limit_per_minute: int | None = Field(default=None, ge=0)
    log_bodies: bool = False
    max_body_bytes: int | None = Field(default=None, gt=0, le=64 * 1024 * 1024)


class EndpointUpdate(BaseModel):
    model_config = STRICT

    settings: dict[str, Any] | None = Field(default=None, description="Merged into the current settings")
    unset: list[str] | None = Field(default=None, description="Settings to clear")
    apps: list[str] | None = None
    name: str | None = Field(default=None, max_length=100)
    rate_limit_per_minute: int | None = Field(default=None, ge=0)
    log_bodies: bool | None = None
    max_body_bytes: int | None = Field(default=None, gt=0, le=64 * 1024 * 1024)


class RotateIn(BaseModel):
    model_config = STRICT

    grace_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_ROTATION_GRACE,
        allow_inf_nan=False,
        description="How long the old URL keeps working",
    )


class ActionIn(BaseModel):
    model_config = STRICT

    args: dict[str, str] = Field(default_factory=dict)


class ActionOut(BaseModel):
    result: Any
    ok: bool = Field(default=True, description="False when the action reports a failure (the CLI exits 1)")
    events: list[dict[str, Any]] | None = Field(default=None, description="What a streaming action received")
    text: str | None = Field(default=None, description="What the action found, in words (as the CLI prints it)")


class AppOut(BaseModel):
    name: str
    workspace: str
    base_url: str
    api_key: str = Field(description="Always masked")
    mode: str
    fallback: str | None = None
    previous_key: str | None = Field(default=None, description="Masked: the key add-key replaced, in its grace")
    previous_key_until: float | None = None
    created_at: float
    updated_at: float


class AppList(BaseModel):
    apps: list[AppOut]


class AppCheck(BaseModel):
    ok: bool
    info: dict[str, Any]


class EndpointOut(BaseModel):
    id: str
    name: str
    workspace: str
    plugin: str
    apps: list[str]
    url: str
    hint: str | None = Field(default=None, description="The plugin's note on how to use the URL")
    enabled: bool
    settings: dict[str, Any] = Field(description="Secret settings masked")
    previous_urls_expire_at: list[float]
    previous_secrets_expire_at: dict[str, float] = Field(
        default_factory=dict, description="Secret settings whose old value (rotate-secret) is accepted until then"
    )
    rate_limit_per_minute: int | None
    log_bodies: bool
    max_body_bytes: int | None
    created_at: float
    updated_at: float
    secrets: dict[str, str] | None = Field(
        default=None, description="Only when created: secrets the gateway generated, shown this once"
    )


class EndpointList(BaseModel):
    endpoints: list[EndpointOut]


class Deleted(BaseModel):
    deleted: str


class RequestOut(BaseModel):
    time: float
    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float
    verdict: str
    client_ip: str | None = None
    body: str | None = None


class RequestList(BaseModel):
    requests: list[RequestOut]


class PluginOut(BaseModel):
    name: str
    description: str
    permissions: list[str]
    routes: list[dict[str, Any]]
    jobs: list[str]
    actions: list[dict[str, Any]]
    settings_schema: dict[str, Any]
    secret_settings: list[str]
    generated_settings: list[str] = Field(default_factory=list, description="Made by the gateway when not given")


class PluginList(BaseModel):
    plugins: list[PluginOut]


class Overview(BaseModel):
    """What the console's overview draws (gateway/admin/overview.py)."""

    store_ok: bool
    answers: dict[str, int] = Field(description="running, waiting, limit: this process's answers")
    jobs: dict[str, int] = Field(description="Jobs by state (queued, running, dead), counted up to 1000")
    minutes: list[float] = Field(description="Start of each minute of the traffic series, oldest first")
    requests: list[int] = Field(description="Endpoint requests per minute (from the request logs)")
    errors: list[int] = Field(description="Of those, answered with a status of 400 or more")
    endpoints: dict[str, list[int]] = Field(description="Requests per minute of each endpoint")


class JobOut(BaseModel):
    id: str
    kind: str
    state: str
    endpoint_id: str | None
    attempts: int
    max_attempts: int
    due_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    handler: str | None = None
    callback_target: str | None = Field(default=None, description="A callback's scheme://host (no path or query)")


class JobList(BaseModel):
    jobs: list[JobOut]


class WorkspaceOut(BaseModel):
    name: str
    created_at: float


class WorkspaceList(BaseModel):
    workspaces: list[WorkspaceOut]


class TokenOut(BaseModel):
    id: str = Field(description="Names the token in lists and access logs")
    workspace: str
    role: str = Field(description="admin: reads and changes the workspace; viewer: only reads it")
    label: str
    state: str = Field(description="active, expired or revoked")
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class TokenCreated(TokenOut):
    token: str = Field(description="The bearer token, shown this once only (the gateway keeps its hash)")


class TokenList(BaseModel):
    tokens: list[TokenOut]


class WhoAmI(BaseModel):
    role: str = Field(description="operator, admin or viewer")
    workspace: str = Field(description="The workspace this request acts on")
    token_id: str | None = Field(description="The workspace token's id; null for the operator token")


def plugin_out(plugin: Plugin) -> dict[str, Any]:
    return {
        "name": plugin.name,
        "description": plugin.description,
        "permissions": sorted(p.value for p in plugin.permissions),
        "routes": [{"path": r.pattern, "methods": sorted(r.methods)} for r in plugin.routes],
        "jobs": sorted(plugin.jobs),
        "actions": [
            {"name": a.name, "help": a.help, "options": dict(a.options), "flags": dict(a.flags)}
            for a in plugin.actions.values()
        ],
        "settings_schema": plugin.settings_model.model_json_schema(),
        "secret_settings": sorted(plugin.secret_fields()),
        "generated_settings": sorted(plugin.generated),
    }


def job_out(job: Job, callback_target: str | None = None) -> dict[str, Any]:
    """A job without its payload or result: those may hold user content or secrets."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "endpoint_id": job.endpoint_id,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "due_at": job.due_at,
        "last_error": job.last_error,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "handler": job.payload.get("handler") if job.kind == "plugin" else None,
        "callback_target": callback_target,
    }
