"""Admin API handlers of configuration as code and key rotation (their rows are in `api.ADMIN_ROUTES`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request

from gateway.admin.principal import caller
from gateway.configfile.applier import Prepared
from gateway.configfile.service import ConfigService
from gateway.configfile.snapshots import SnapshotStore
from gateway.host.runtime import Gateway
from gateway.records.apps import AppService

__all__ = [
    "AddKeyIn",
    "ApplyIn",
    "ApplyOut",
    "ExportOut",
    "RetireSecretIn",
    "RotateSecretIn",
    "SnapshotIn",
    "SnapshotList",
    "add_app_key",
    "apply_config",
    "delete_snapshot",
    "diff_snapshots",
    "export_config",
    "list_snapshots",
    "restore_snapshot",
    "retire_app_key",
    "retire_endpoint_secret",
    "rotate_endpoint_secret",
    "save_snapshot",
]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class AddKeyIn(_Strict):
    api_key: SecretStr = Field(min_length=1, max_length=512, description="The new key, checked against the app first")
    grace_seconds: float | None = Field(default=None, description="How long the old key stays a fallback on 401")


class RotateSecretIn(_Strict):
    setting: str | None = Field(default=None, description="The secret setting (default: the plugin's rotatable one)")
    value: SecretStr | None = Field(default=None, description="The new value; omitted: the gateway makes one")
    grace_seconds: float | None = Field(default=None, description="How long the old value is still accepted")


class RetireSecretIn(_Strict):
    setting: str | None = Field(default=None, description="Only this setting's old value (default: all)")


class ExportOut(BaseModel):
    yaml: str = Field(description="The configuration file; secrets as ${VAR} references")
    skipped: list[str] = Field(description="Endpoints left out: their plugin is not installed")


class ApplyIn(_Strict):
    yaml: str = Field(max_length=16 * 1024 * 1024)
    variables: dict[str, SecretStr] = Field(default_factory=dict, description="Values of the file's ${VAR}s")
    dry_run: bool = False
    prune: bool = False


class ChangeOut(BaseModel):
    action: str
    kind: str
    key: str
    fields: list[str]


class ApplyOut(BaseModel):
    dry_run: bool
    changes: list[ChangeOut]
    secrets: dict[str, dict[str, str]] = Field(description="Secrets generated for created endpoints, shown once")


class SnapshotIn(_Strict):
    tag: str
    dry_run: bool = False


class SnapshotOut(BaseModel):
    tag: str
    workspace: str
    created_at: float
    apps: int
    endpoints: int


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]


def _config(gw: Gateway) -> ConfigService:
    snapshots = SnapshotStore(gw.store, gw.box, gw.clock)
    return ConfigService(gw.apps, gw.endpoints, gw.registry, snapshots, gw.workspaces, gw.dify_plugins)


def _workspace(request: Request) -> str:
    """The workspace the call acts on (the token's, or the operator's `?workspace=`)."""
    return caller(request).workspace


def _applied(prepared: Prepared, dry_run: bool) -> dict[str, Any]:
    changes = [change.to_dict() for change in prepared.changes]
    return {"dry_run": dry_run, "changes": changes, "secrets": prepared.generated}


async def add_app_key(request: Request, gw: Gateway, body: AddKeyIn) -> Any:
    grace = gw.settings.rotation_grace if body.grace_seconds is None else body.grace_seconds
    name, key = request.path_params["name"], body.api_key.get_secret_value()
    return AppService.public(await gw.apps.add_key(name, key, grace=grace, workspace=_workspace(request)))


async def retire_app_key(request: Request, gw: Gateway, _: None) -> Any:
    return AppService.public(await gw.apps.retire_key(request.path_params["name"], workspace=_workspace(request)))


async def rotate_endpoint_secret(request: Request, gw: Gateway, body: RotateSecretIn) -> Any:
    endpoint = await gw.endpoints.get(request.path_params["id"], workspace=_workspace(request))
    record, setting, shown = await gw.endpoints.rotate_secret(
        endpoint.id,
        setting=body.setting,
        value=None if body.value is None else body.value.get_secret_value(),
        grace=body.grace_seconds,
    )
    return {**gw.endpoints.public(record), "secrets": {setting: shown} if shown is not None else {}}


async def retire_endpoint_secret(request: Request, gw: Gateway, body: RetireSecretIn) -> Any:
    endpoint = await gw.endpoints.get(request.path_params["id"], workspace=_workspace(request))
    return gw.endpoints.public(await gw.endpoints.retire_secret(endpoint.id, setting=body.setting))


async def export_config(request: Request, gw: Gateway, _: None) -> Any:
    exported = await _config(gw).export(_workspace(request))
    return {"yaml": exported.text, "skipped": exported.skipped}


async def apply_config(request: Request, gw: Gateway, body: ApplyIn) -> Any:
    variables = {name: value.get_secret_value() for name, value in body.variables.items()}
    prepared = await _config(gw).apply(
        body.yaml,
        variables,
        dry_run=body.dry_run,
        prune=body.prune,
        workspace=_workspace(request),  # a workspace token applies to its own workspace only
        source="the configuration",
    )
    return _applied(prepared, body.dry_run)


async def list_snapshots(request: Request, gw: Gateway, _: None) -> Any:
    return {"snapshots": await _config(gw).snapshots.list(_workspace(request))}


async def save_snapshot(request: Request, gw: Gateway, body: SnapshotIn) -> Any:
    return await _config(gw).save_snapshot(body.tag, _workspace(request))


async def diff_snapshots(request: Request, gw: Gateway, _: None) -> Any:
    first, second = request.path_params["tag"], request.path_params["other"]
    changes = await _config(gw).diff_snapshots(first, second, _workspace(request))
    return {"dry_run": True, "changes": [change.to_dict() for change in changes], "secrets": {}}


async def restore_snapshot(request: Request, gw: Gateway, body: SnapshotIn) -> Any:
    prepared = await _config(gw).restore_snapshot(body.tag, _workspace(request), dry_run=body.dry_run)
    return _applied(prepared, body.dry_run)


async def delete_snapshot(request: Request, gw: Gateway, _: None) -> Any:
    await _config(gw).snapshots.delete(request.path_params["tag"], _workspace(request))
    return {"deleted": request.path_params["tag"]}
