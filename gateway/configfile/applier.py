"""Making the gateway match a `State`: check everything first, then change what differs.

`ConfigApplier.prepare` reads the gateway, checks the whole desired state against it (plugins,
settings, app bindings, fallbacks, keys of new apps, what a prune would break) and returns the
plan; a single problem refuses everything, each named with its field and line. `carry_out`
then makes the plan's changes through the same services the CLI and the admin API use, so every
rule of theirs holds. Existing endpoints keep their id and URL; created ones get the id the file
gives (and the URL token, when it gives one this gateway signed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import SecretStr

from gateway.configfile.exporter import current_state
from gateway.configfile.model import AppState, EndpointState, State
from gateway.configfile.plan import Change, diff
from gateway.configfile.yamlfile import Path, error, failed
from gateway.exceptions import ValidationFailed
from gateway.host.registry import PluginRegistry
from gateway.records.apps import MOVED_WITHOUT_KEY, AppIn, AppService, AppUpdate
from gateway.records.endpoints import EndpointOptions, EndpointService
from gateway.security.crypto import MASK
from gateway.security.upstreams import UpstreamGuard, is_http_url

__all__ = ["ConfigApplier", "Prepared"]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A checked plan: the changes, and the states they go from and to."""

    changes: list[Change]
    current: State
    desired: State
    generated: dict[str, dict[str, str]] = field(default_factory=dict)  # filled by carry_out: id -> shown secrets


class ConfigApplier:
    def __init__(
        self,
        apps: AppService,
        endpoints: EndpointService,
        registry: PluginRegistry,
        *,
        upstreams: UpstreamGuard | None = None,
    ) -> None:
        self._apps = apps
        self._endpoints = endpoints
        self._registry = registry
        self._upstreams = upstreams  # set when a workspace token applies: its URLs are guarded
        self._guarded = upstreams is not None

    async def prepare(
        self,
        desired: State,
        *,
        prune: bool,
        installed: Mapping[str, str] | None = None,
        pinned: bool = True,
        order: dict[str, int] | None = None,
        line: Callable[[Path], int | None] = lambda path: None,
        source: str = "the file",
    ) -> Prepared:
        """Check `desired` against the gateway and plan the changes (`ValidationFailed` lists every
        problem). `order` maps endpoint ids and app names to their index in the file, for lines."""
        current, skipped = await current_state(
            self._apps, self._endpoints, self._registry, workspace=desired.workspace, packages=installed
        )
        order = order or {}
        errors: list[dict[str, object]] = []

        def problem(path: Path, message: str) -> None:
            errors.append(error(path, message, line(path)))

        for index, (key, identity) in enumerate(sorted(desired.packages.items())):
            # Packages are installed by the operator (`dify-gateway plugins install`), never by a file.
            if key not in current.packages:
                problem(("packages", order.get("package:" + key, index), "key"), f"Dify plugin {key} is not installed")
            elif pinned and current.packages[key] != identity:
                where_package: Path = ("packages", order.get("package:" + key, index), "identity")
                problem(where_package, f"{current.packages[key]} is installed, not {identity}")
        taken = {record.id for record in await self._endpoints.all()} - current.endpoints.keys()
        final_apps = desired.apps.keys() | (set() if prune else current.apps.keys())
        for name, app in desired.apps.items():
            where: Path = ("apps", order.get("app:" + name, 0))
            if app.api_key is None and name not in current.apps:
                problem((*where, "api_key"), f"app {name!r} is new: its api_key is needed")
            if app.api_key == MASK:
                problem((*where, "api_key"), "the mask is not a key; leave api_key out to keep the current one")
            if app.api_key is None and name in current.apps and current.apps[name].base_url != app.base_url:
                problem((*where, "api_key"), MOVED_WITHOUT_KEY)
            if app.fallback is not None and (app.fallback == name or app.fallback not in final_apps):
                problem((*where, "fallback"), f"the fallback app {app.fallback!r} is not an app of the gateway")
        endpoints: dict[str, EndpointState] = {}
        for endpoint_id, ep in desired.endpoints.items():
            where = ("endpoints", order.get(endpoint_id, 0))
            plugin = self._registry.require(ep.plugin)
            existing = current.endpoints.get(endpoint_id)
            if endpoint_id in taken or endpoint_id in skipped:
                problem((*where, "id"), f"endpoint {endpoint_id} exists and can't be managed from here")
                continue
            if existing is not None and existing.plugin != ep.plugin:
                problem((*where, "plugin"), f"endpoint {endpoint_id} runs plugin {existing.plugin!r}; use a new id")
                continue
            for app_name in ep.apps:
                if app_name not in final_apps:
                    problem((*where, "apps"), f"no app named {app_name!r}")
            if len(ep.apps) < plugin.min_apps or (plugin.max_apps is not None and len(ep.apps) > plugin.max_apps):
                most = "any" if plugin.max_apps is None else str(plugin.max_apps)
                problem((*where, "apps"), f"plugin {ep.plugin!r} takes {plugin.min_apps} to {most} apps")
            if existing is None and ep.url_token is not None and not self._endpoints.authentic_token(ep.url_token):
                problem((*where, "url_token"), "the URL token was not signed with this gateway's secret key")
            elif existing is None and ep.url_token is not None:
                if (await self._endpoints.url_owner(ep.url_token)) not in (None, desired.workspace):
                    problem((*where, "url_token"), "the URL belonged to an endpoint of another workspace")
            kept = [name for name in ep.secret_fields if name not in ep.settings]
            values = dict(ep.settings)
            for name in kept:
                if existing is not None:
                    values[name] = existing.settings.get(name)
                elif name in plugin.generated:
                    values[name] = plugin.generated[name]()[0]  # only to check the rest; made again on create
            try:
                normal = self._endpoints.checked_settings(ep.plugin, values)
            except ValidationFailed as exc:
                for refused in exc.errors or [{"field": "", "message": exc.message}]:
                    problem((*where, "settings", str(refused["field"])), str(refused["message"]))
                continue
            endpoints[endpoint_id] = replace(ep, settings={k: v for k, v in normal.items() if k not in kept})
        remaining = endpoints if prune else {**current.endpoints, **endpoints}
        for name in current.apps.keys() - final_apps:
            users = sorted(i for i, ep in remaining.items() if name in ep.apps)
            fallback_of = sorted(a.name for a in desired.apps.values() if a.fallback == name)
            if users or fallback_of:
                problem(("apps",), f"app {name!r} can't be pruned: {', '.join(users + fallback_of)} use it")
        if errors:
            raise failed(source, errors)
        normalised = State(workspace=desired.workspace, apps=dict(desired.apps), endpoints=endpoints)
        return Prepared(diff(current, normalised, prune=prune), current, normalised)

    async def carry_out(self, prepared: Prepared) -> Prepared:
        """Make the prepared changes; returns them with the secrets generated for created endpoints."""
        desired, current = prepared.desired, prepared.current
        workspace = desired.workspace
        fallbacks: list[AppState] = []
        generated: dict[str, dict[str, str]] = {}
        await self._check_upstreams(prepared)
        for change in prepared.changes:
            if change.kind == "app" and change.action == "create":
                app = desired.apps[change.key]
                assert app.api_key is not None  # checked by prepare
                ready = app.fallback if app.fallback in current.apps else None
                await self._apps.add(
                    AppIn(
                        name=app.name,
                        base_url=app.base_url,
                        api_key=SecretStr(app.api_key),
                        mode=app.mode,
                        fallback=ready,
                    ),
                    workspace=workspace,
                    guarded=self._guarded,
                )
                if app.fallback != ready:
                    fallbacks.append(app)
            elif change.kind == "app" and change.action == "update":
                app = desired.apps[change.key]
                fallback: str | None = None  # unchanged, or set once every app exists
                if "fallback" in change.fields and (app.fallback is None or app.fallback in current.apps):
                    fallback = app.fallback or ""
                elif "fallback" in change.fields:
                    fallbacks.append(app)
                await self._apps.update(
                    app.name,
                    AppUpdate(
                        base_url=app.base_url if "base_url" in change.fields else None,
                        api_key=SecretStr(app.api_key)
                        if {"api_key", "base_url"} & set(change.fields) and app.api_key
                        else None,
                        mode=app.mode,
                        fallback=fallback,
                    ),
                    workspace=workspace,
                    guarded=self._guarded,
                )
            elif change.kind == "endpoint" and change.action == "create":
                shown = await self._create(desired.endpoints[change.key], workspace)
                if shown:
                    generated[change.key] = shown
            elif change.kind == "endpoint" and change.action == "update":
                await self._update(desired.endpoints[change.key], change.fields)
            elif change.kind == "endpoint":
                await self._endpoints.delete(change.key)
        for app in fallbacks:  # once every app exists
            await self._apps.update(app.name, AppUpdate(fallback=app.fallback), workspace=workspace)
        await self._prune_apps([c.key for c in prepared.changes if c.kind == "app" and c.action == "delete"], current)
        return replace(prepared, generated=generated)

    async def _check_upstreams(self, prepared: Prepared) -> None:
        """For a workspace token: every URL the changes set (apps' base URLs, http(s) settings) must
        pass the upstream guard, checked before anything changes so a refusal leaves all as it was."""
        if self._upstreams is None:
            return
        current = prepared.current
        for change in prepared.changes:
            if change.action == "delete":
                continue
            if change.kind == "app" and (change.action == "create" or "base_url" in change.fields):
                await self._upstreams.check(prepared.desired.apps[change.key].base_url, f"apps.{change.key}.base_url")
            elif change.kind == "endpoint":
                before = current.endpoints[change.key].settings if change.key in current.endpoints else {}
                for name, value in prepared.desired.endpoints[change.key].settings.items():
                    if is_http_url(value) and before.get(name) != value:
                        await self._upstreams.check(value, f"endpoints.{change.key}.settings.{name}")

    async def _create(self, ep: EndpointState, workspace: str) -> dict[str, str]:
        _, _, shown = await self._endpoints.create_with_secrets(
            ep.plugin,
            list(ep.apps),
            dict(ep.settings),
            name=ep.name,
            options=_options(ep),
            workspace=workspace,
            endpoint_id=ep.id,
            token=ep.url_token,
            guarded=self._guarded,
        )
        if not ep.enabled:
            await self._endpoints.set_enabled(ep.id, False)
        return shown

    async def _update(self, ep: EndpointState, fields: tuple[str, ...]) -> None:
        settings: dict[str, Any] | None = None
        if any(f.startswith("settings.") for f in fields):
            settings = dict(ep.settings)  # every setting but the kept secrets: the merge replaces them all
        await self._endpoints.update(
            ep.id,
            settings=settings,
            apps=list(ep.apps) if "apps" in fields else None,
            name=ep.name if "name" in fields else None,
            options=_options(ep) if any(f.startswith("limits.") for f in fields) else None,
            guarded=self._guarded,
        )
        if "enabled" in fields:
            await self._endpoints.set_enabled(ep.id, ep.enabled)

    async def _prune_apps(self, names: list[str], current: State) -> None:
        for name in names:  # their fallbacks among each other first, then each app
            if current.apps[name].fallback is not None:
                await self._apps.update(name, AppUpdate(fallback=""), workspace=current.workspace)
        for name in names:
            await self._apps.remove(name, bound_to=[], workspace=current.workspace)


def _options(ep: EndpointState) -> EndpointOptions:
    return EndpointOptions(ep.limits.rate_limit_per_minute, ep.limits.log_bodies, ep.limits.max_body_bytes)
