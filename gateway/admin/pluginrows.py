"""Rows for the plugin listings of the admin API and the CLI: the gateway's own plugins with their
origin, and installed Dify plugin packages (no HTTP here: the CLI imports it)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from gateway.admin import schemas as s
from gateway.host.registry import ENTRY_POINT_GROUP
from gateway.host.runtime import Gateway
from gateway.plugin import Plugin
from gateway.records.installations import Installation

__all__ = [
    "DifyPluginOut",
    "PluginListing",
    "RemovedPlugin",
    "Verified",
    "installation_out",
    "plugin_listing",
    "plugin_origin",
]


class DifyPluginOut(BaseModel):
    name: str
    origin: str
    label: str
    version: str
    identity: str
    signature: str
    signer: str | None
    signature_reason: str
    permissions: list[str]
    settings_form: list[dict[str, Any]]
    secret_settings: list[str]
    endpoints: list[dict[str, Any]]
    unserved: list[str]
    runtime_state: str | None
    install_dir: str | None  # the server's path: shown to the operator only (None to workspace tokens)
    installed_at: float
    updated_at: float
    # In listings: the plugin its endpoints are made with (settings schema, routes), as for the
    # gateway's own; null when the runtime hasn't loaded it.
    endpoint_plugin: s.PluginOut | None = None


class PluginListing(BaseModel):
    plugins: list[s.PluginOut]  # the gateway's own plugins, each with its origin and version
    dify_plugins: list[DifyPluginOut]  # installed Dify plugin packages


class Verified(BaseModel):
    signed: bool
    signer: str | None
    identity: str | None
    reason: str


class RemovedPlugin(BaseModel):
    deleted: str
    disabled_endpoints: list[str]


def installation_out(installation: Installation, runtime_state: str | None, *, paths: bool = True) -> dict[str, Any]:
    """One installed package as the API and CLI show it; `paths=False` leaves out where it sits on the
    server (workspace tokens see what is installed, not the operator's file system)."""
    return {
        "name": installation.key,
        "origin": installation.origin,
        "label": installation.label,
        "version": installation.version,
        "identity": installation.identity,
        "signature": installation.signature_state,
        "signer": installation.signer,
        "signature_reason": installation.signature_reason,
        "permissions": installation.permission_model.declared(),
        "settings_form": [f.to_dict() for f in installation.settings_form],
        "secret_settings": sorted(f.name for f in installation.settings_form if f.secret),
        "endpoints": [dict(e) for e in installation.endpoints],
        "unserved": list(installation.unserved),
        "runtime_state": runtime_state,
        "install_dir": installation.install_dir if paths else None,
        "installed_at": installation.installed_at,
        "updated_at": installation.updated_at,
    }


def plugin_origin(plugin: Plugin) -> tuple[str, str | None]:
    """Where a gateway plugin comes from (`built-in` or `entry point`) and its distribution's version."""
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=plugin.name):
        dist = entry.dist
        if dist is None:
            return "entry point", None
        return ("built-in" if dist.name == "dify-gateway" else "entry point"), dist.version
    return "built-in", None


async def plugin_listing(gw: Gateway, *, paths: bool = True) -> dict[str, Any]:
    """Every plugin the gateway has: its own (built-in or from entry points) and Dify packages
    (`paths`: as in `installation_out`)."""
    own = []
    for plugin in gw.registry.plugins():
        origin, version = plugin_origin(plugin)
        own.append({**s.plugin_out(plugin), "origin": origin, "version": version})
    dify = []
    for installation in await gw.dify_plugins.all():
        row = installation_out(installation, gw.dify_plugins.runtime_state(installation), paths=paths)
        loaded = gw.registry.get(installation.key)
        dify.append({**row, "endpoint_plugin": None if loaded is None else s.plugin_out(loaded)})
    return {"plugins": own, "dify_plugins": dify}
