"""The gateway's apps and endpoints as a `State`, and a `State` to and from a `ConfigFile`.

`current_state` reads the records of one workspace with their secrets decrypted (in memory only).
`to_file` puts a `${VAR}` reference in place of every secret and returns the secrets by variable
name beside it (a snapshot seals them; an export drops them). `from_file` does the reverse with
the variables it is given, refusing the whole file when one is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.configfile.model import (
    AppSpec,
    AppState,
    ConfigFile,
    EndpointSpec,
    EndpointState,
    Limits,
    PackageSpec,
    State,
)
from gateway.configfile.references import MissingVariable, app_key_variable, endpoint_variable, reference, resolve
from gateway.configfile.yamlfile import Path, error, failed
from gateway.host.registry import PluginRegistry
from gateway.records.apps import AppService
from gateway.records.endpoints import EndpointService

__all__ = ["current_state", "from_file", "to_file"]

URL_SETTING = "url"  # the variable suffix of an endpoint's URL token in a snapshot


async def current_state(
    apps: AppService,
    endpoints: EndpointService,
    registry: PluginRegistry,
    *,
    workspace: str = "default",
    packages: Mapping[str, str] | None = None,
) -> tuple[State, list[str]]:
    """The workspace's apps and endpoints, secrets decrypted, with the installed Dify `packages`
    (author/name -> identity); and the ids of endpoints left out because their plugin is not
    installed (their settings can't be read)."""
    state = State(workspace=workspace, packages=dict(packages or {}))
    for app in await apps.all(workspace):
        state.apps[app.name] = AppState(app.name, app.base_url, app.mode, app.fallback, apps.api_key(app))
    skipped: list[str] = []
    for record in await endpoints.all(workspace):
        plugin = registry.get(record.plugin)
        if plugin is None:
            skipped.append(record.id)
            continue
        options = record.options
        state.endpoints[record.id] = EndpointState(
            **_shared(record),
            settings=endpoints.plain_settings(record, plugin),
            limits=Limits(
                rate_limit_per_minute=options.rate_limit_per_minute,
                log_bodies=options.log_bodies,
                max_body_bytes=options.max_body_bytes,
            ),
            secret_fields=plugin.secret_fields(),
            url_token=endpoints.url(record).rsplit("/e/", 1)[1],
        )
    return state, skipped


def to_file(state: State, *, with_urls: bool = False) -> tuple[ConfigFile, dict[str, str]]:
    """The file of `state` (secrets as `${VAR}`) and the secrets by variable name.

    With `with_urls`, each endpoint's URL token is referenced too (snapshots: a restore of a deleted
    endpoint brings its URL back)."""
    secrets: dict[str, str] = {}

    def hide(name: str, value: str | None) -> str | None:
        if value is None:
            return None
        secrets[name] = value
        return reference(name)

    app_specs = [
        AppSpec(
            name=app.name,
            base_url=app.base_url,
            mode=app.mode,
            fallback=app.fallback,
            api_key=hide(app_key_variable(app.name, state.workspace), app.api_key),
        )
        for app in sorted(state.apps.values(), key=lambda a: a.name)
    ]
    endpoint_specs = []
    for ep in sorted(state.endpoints.values(), key=lambda e: e.id):
        settings = dict(ep.settings)
        for name in sorted(ep.secret_fields & settings.keys()):
            value = settings[name]
            settings[name] = hide(endpoint_variable(ep.id, name), value if isinstance(value, str) else None)
        token = hide(endpoint_variable(ep.id, URL_SETTING), ep.url_token) if with_urls else None
        endpoint_specs.append(
            EndpointSpec(
                **_shared(ep),
                settings=settings,
                limits=ep.limits,
                url_token=token,
            )
        )
    packages = tuple(PackageSpec(key=key, identity=state.packages[key]) for key in sorted(state.packages))
    config = ConfigFile(
        workspace=state.workspace, apps=tuple(app_specs), endpoints=tuple(endpoint_specs), packages=packages
    )
    return config, secrets


def from_file(
    config: ConfigFile,
    variables: Mapping[str, str],
    registry: PluginRegistry,
    *,
    line: Callable[[Path], int | None] = lambda path: None,
    source: str = "the file",
) -> State:
    """The state `config` asks for, references resolved from `variables`. Every missing variable
    and unknown plugin is reported at once, with its line (`ValidationFailed`)."""
    errors: list[dict[str, object]] = []

    def problem(path: Path, message: str) -> None:
        errors.append(error(path, message, line(path)))

    def fill(value: Any, path: Path) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return resolve(value, variables)
        except MissingVariable as missing:
            problem(path, f"${{{missing.name}}} is not set")
            return None

    state = State(workspace=config.workspace, packages={p.key: p.identity for p in config.packages})
    for index, app in enumerate(config.apps):
        if app.name in state.apps:
            problem(("apps", index, "name"), f"app {app.name!r} is listed twice")
        key = fill(app.api_key, ("apps", index, "api_key"))
        state.apps[app.name] = AppState(app.name, app.base_url.strip().rstrip("/"), app.mode, app.fallback, key)
    for index, ep in enumerate(config.endpoints):
        where: Path = ("endpoints", index)
        plugin = registry.get(ep.plugin)
        if plugin is None:
            problem((*where, "plugin"), f"no plugin named {ep.plugin!r} is installed")
            continue
        if ep.id in state.endpoints:
            problem((*where, "id"), f"endpoint {ep.id} is listed twice")
        state.endpoints[ep.id] = EndpointState(
            **_shared(ep),
            settings={name: fill(value, (*where, "settings", name)) for name, value in ep.settings.items()},
            limits=ep.limits,
            secret_fields=plugin.secret_fields(),
            url_token=fill(ep.url_token, (*where, "url_token")),
        )
    if errors:
        raise failed(source, errors)
    return state


def _shared(endpoint: object) -> dict[str, Any]:
    """What a record, a file's entry and a state say alike of an endpoint."""
    return {name: getattr(endpoint, name) for name in ("id", "name", "plugin", "apps", "enabled")}
