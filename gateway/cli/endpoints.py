"""`dify-gateway endpoints create|list|show|update|disable|enable|rotate|delete|requests`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from gateway.admin.usecases import delete_endpoint
from gateway.cli.common import emit, fail, iso_times, key_values, run, table
from gateway.cli.duration import DURATION
from gateway.cli.workspaces import workspace_option
from gateway.host.runtime import Gateway
from gateway.records.endpoints import EndpointOptions, EndpointRecord, coerce_setting


@click.group("endpoints")
def endpoints() -> None:
    """Endpoints: a plugin bound to apps, reached at a random URL."""


MAX_BODY_LIMIT = 64 * 1024 * 1024  # as the admin API allows
DEFAULT = "default"


def _limit(
    low: int, high: int | None = None
) -> Callable[[click.Context, click.Parameter, str | None], int | str | None]:
    """An option callback: a whole number from `low` to `high`, or "default" (the gateway-wide setting)."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
        if value is None or value == DEFAULT:
            return value
        try:
            number = int(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a whole number or {DEFAULT!r}") from None
        if number < low or (high is not None and number > high):
            most = f" to {high}" if high is not None else " or more"
            raise click.BadParameter(f"{number} is out of range: {low}{most}, or {DEFAULT!r}")
        return number

    return convert


def _options_of(current: EndpointOptions, rate_limit: Any, log_bodies: bool | None, max_body: Any) -> EndpointOptions:
    """`current` with the options given on the command line ("default": the gateway's setting)."""

    def pick(value: Any, old: int | None) -> int | None:
        return old if value is None else None if value == DEFAULT else int(value)

    return EndpointOptions(
        pick(rate_limit, current.rate_limit_per_minute),
        current.log_bodies if log_bodies is None else log_bodies,
        pick(max_body, current.max_body_bytes),
    )


def _option_flags(update: bool) -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """The per-endpoint options, as `endpoints create` and `endpoints update` take them."""
    keep = " (omit: unchanged)" if update else ""
    return [
        click.option(
            "--rate-limit",
            "--rate-limit-per-minute",
            "rate_limit",
            metavar="N|default",
            callback=_limit(0),
            help=f"Requests per minute; 0: unlimited; 'default': GATEWAY_RATE_LIMIT_PER_MINUTE{keep}",
        ),
        click.option(
            "--max-body-bytes",
            metavar="N|default",
            callback=_limit(1, MAX_BODY_LIMIT),
            help=f"Request body cap in bytes (larger: 413); 'default': GATEWAY_MAX_BODY_BYTES{keep}",
        ),
        click.option(
            "--log-bodies/--no-log-bodies",
            default=None,
            help=f"Keep request bodies in the request log{keep}",
        ),
    ]


def _with(
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def _public(gw: Gateway, record: EndpointRecord) -> dict[str, Any]:
    """The endpoint as `endpoints show` prints it: secrets masked, times in ISO 8601."""
    return iso_times(gw.endpoints.public(record), "created_at", "updated_at", "previous_urls_expire_at")


def _human(ep: dict[str, Any]) -> str:
    lines = [f"{k}: {v}" for k, v in ep.items() if k not in ("url", "settings")]
    lines += [f"settings.{k}: {v}" for k, v in ep.get("settings", {}).items()]
    return "\n".join([f"url: {ep['url']}", *lines])


def _settings(gw: Gateway, plugin: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    model = gw.registry.require(plugin).settings_model
    return {key: coerce_setting(model, key, value) for key, value in pairs}


@endpoints.command("create")
@click.option("--plugin", required=True, help="Plugin name (dify-gateway plugins)")
@click.option("--app", "apps", multiple=True, help="Dify app to bind (repeatable)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Plugin setting (repeatable)")
@click.option("--name", default="", help="A label for operators")
@_with(_option_flags(update=False))
@workspace_option()
@click.option("--json", "as_json", is_flag=True)
def create(
    plugin: str,
    apps: tuple[str, ...],
    sets: tuple[str, ...],
    name: str,
    rate_limit: int | str | None,
    max_body_bytes: int | str | None,
    log_bodies: bool | None,
    workspace: str,
    as_json: bool,
) -> None:
    """Mint an endpoint and print its URL."""
    pairs = key_values(sets, "--set")

    async def action(gw: Gateway) -> dict[str, Any]:
        await gw.workspaces.require(workspace)
        record, url, shown = await gw.endpoints.create_with_secrets(
            plugin,
            list(apps),
            _settings(gw, plugin, pairs) if gw.registry.get(plugin) else {},
            name=name,
            options=_options_of(EndpointOptions(), rate_limit, log_bodies, max_body_bytes),
            workspace=workspace,
        )
        return {**_public(gw, record), "url": url, "secrets": shown}

    def human(ep: dict[str, Any]) -> str:
        lines = [ep["url"], f"(endpoint {ep['id']}, plugin {ep['plugin']})"]
        if ep.get("hint"):
            lines.append(ep["hint"])
        lines += [f"{key} (shown once, keep it): {value}" for key, value in ep["secrets"].items()]
        return "\n".join(lines)

    emit(run(action), as_json, human)


@endpoints.command("list")
@workspace_option()
@click.option("--json", "as_json", is_flag=True)
def list_(workspace: str, as_json: bool) -> None:
    """List endpoints."""

    async def action(gw: Gateway) -> list[dict[str, Any]]:
        await gw.workspaces.require(workspace)
        return [_public(gw, e) for e in await gw.endpoints.all(workspace)]

    emit(
        run(action),
        as_json,
        lambda rows: table(
            ((e["id"], e["plugin"], ",".join(e["apps"]), "yes" if e["enabled"] else "no", e["url"]) for e in rows),
            ["ID", "PLUGIN", "APPS", "ENABLED", "URL"],
        ),
    )


@endpoints.command("show")
@click.argument("endpoint_id")
@workspace_option(optional=True)
@click.option("--json", "as_json", is_flag=True)
def show(endpoint_id: str, workspace: str | None, as_json: bool) -> None:
    """Show an endpoint (secret settings masked)."""

    async def action(gw: Gateway) -> dict[str, Any]:
        return _public(gw, await gw.endpoints.get(endpoint_id, workspace=workspace))

    emit(run(action), as_json, _human)


@endpoints.command("update")
@click.argument("endpoint_id")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--unset", "unsets", multiple=True, metavar="KEY")
@click.option("--app", "apps", multiple=True, help="Replace the bound apps")
@_with(_option_flags(update=True))
@workspace_option(optional=True)
@click.option("--json", "as_json", is_flag=True)
def update(
    endpoint_id: str,
    sets: tuple[str, ...],
    unsets: tuple[str, ...],
    apps: tuple[str, ...],
    rate_limit: int | str | None,
    max_body_bytes: int | str | None,
    log_bodies: bool | None,
    workspace: str | None,
    as_json: bool,
) -> None:
    """Change settings (others, secrets included, stay as they are)."""
    pairs = key_values(sets, "--set")

    async def action(gw: Gateway) -> dict[str, Any]:
        current = await gw.endpoints.get(endpoint_id, workspace=workspace)
        options = None
        if (rate_limit, max_body_bytes, log_bodies) != (None, None, None):
            options = _options_of(current.options, rate_limit, log_bodies, max_body_bytes)
        record = await gw.endpoints.update(
            endpoint_id,
            settings=_settings(gw, current.plugin, pairs) if pairs else None,
            unset=list(unsets) or None,
            apps=list(apps) or None,
            options=options,
        )
        return _public(gw, record)

    emit(run(action), as_json, _human)


def _toggle(endpoint_id: str, enabled: bool, workspace: str | None) -> None:
    async def action(gw: Gateway) -> None:
        await gw.endpoints.set_enabled((await gw.endpoints.get(endpoint_id, workspace=workspace)).id, enabled)

    run(action)
    click.echo(f"{endpoint_id} {'enabled' if enabled else 'disabled'}")


@endpoints.command("disable")
@click.argument("endpoint_id")
@workspace_option(optional=True)
def disable(endpoint_id: str, workspace: str | None) -> None:
    """Turn an endpoint off: its URL answers 404 until enabled again."""
    _toggle(endpoint_id, False, workspace)


@endpoints.command("enable")
@click.argument("endpoint_id")
@workspace_option(optional=True)
def enable(endpoint_id: str, workspace: str | None) -> None:
    """Turn a disabled endpoint back on."""
    _toggle(endpoint_id, True, workspace)


@endpoints.command("rotate")
@click.argument("endpoint_id")
@click.option("--grace", type=float, default=None, help="Seconds the old URL keeps working (default 24 h)")
@workspace_option(optional=True)
@click.option("--json", "as_json", is_flag=True)
def rotate(endpoint_id: str, grace: float | None, workspace: str | None, as_json: bool) -> None:
    """Mint a new URL; the old one keeps working for the grace period."""

    async def action(gw: Gateway) -> dict[str, Any]:
        current = await gw.endpoints.get(endpoint_id, workspace=workspace)
        record, url = await gw.endpoints.rotate(current.id, grace=grace)
        return {**_public(gw, record), "url": url}

    def human(ep: dict[str, Any]) -> str:
        expiries = ep["previous_urls_expire_at"]
        if expiries:  # ISO 8601 in UTC sorts as time does
            note = f"The old URL keeps working until {expiries[-1]} (UTC), then answers 404."
        else:
            note = "The old URL stopped working at once."
        return f"{ep['url']}\n{note}"

    emit(run(action), as_json, human)


@endpoints.command("rotate-secret")
@click.argument("endpoint_id")
@click.option("--setting", default=None, help="The secret setting (default: the plugin's only rotatable one)")
@click.option("--value", default=None, help="The new value ('-' reads stdin); omit to have the gateway make one")
@click.option(
    "--grace",
    type=DURATION,
    default=None,
    help="How long the old value is still accepted (90, 30m, 24h; default GATEWAY_ROTATION_GRACE)",
)
@workspace_option(optional=True)
@click.option("--json", "as_json", is_flag=True)
def rotate_secret(
    endpoint_id: str, setting: str | None, value: str | None, grace: float | None, workspace: str | None, as_json: bool
) -> None:
    """Give a signing secret a new value without downtime: requests signed with the old one are
    still accepted, and callbacks carry signatures by both, until the grace ends."""
    if value == "-":
        value = sys.stdin.readline().strip()

    async def action(gw: Gateway) -> dict[str, Any]:
        current = await gw.endpoints.get(endpoint_id, workspace=workspace)
        record, name, shown = await gw.endpoints.rotate_secret(current.id, setting=setting, value=value, grace=grace)
        out = {**_public(gw, record), "rotated": name}
        expiries = out["previous_secrets_expire_at"]
        out["previous_secrets_expire_at"] = iso_times(expiries, *expiries)
        if shown is not None:
            out["new_value"] = shown  # made by the gateway: shown this once
        return out

    def human(ep: dict[str, Any]) -> str:
        name = ep["rotated"]
        until = ep["previous_secrets_expire_at"].get(name)
        lines = [f"{name} of {ep['id']} rotated"]
        if "new_value" in ep:
            lines.append(f"new {name} (shown once, keep it): {ep['new_value']}")
        lines.append(f"the old value is accepted until {until} (UTC)" if until else "the old value stopped working")
        return "\n".join(lines)

    emit(run(action), as_json, human)


@endpoints.command("retire-secret")
@click.argument("endpoint_id")
@click.option("--setting", default=None, help="Only this setting's old value (default: every one)")
@workspace_option(optional=True)
def retire_secret(endpoint_id: str, setting: str | None, workspace: str | None) -> None:
    """Stop accepting the old values `rotate-secret` kept, before their grace ends."""

    async def action(gw: Gateway) -> None:
        current = await gw.endpoints.get(endpoint_id, workspace=workspace)
        await gw.endpoints.retire_secret(current.id, setting=setting)

    run(action)
    click.echo(f"{endpoint_id}: only the current secret values are accepted")


@endpoints.command("delete")
@click.argument("endpoint_id")
@click.option("--yes", is_flag=True, help="Do not ask")
@workspace_option(optional=True)
def delete(endpoint_id: str, yes: bool, workspace: str | None) -> None:
    """Delete an endpoint, its storage and its request log."""
    if not yes and not click.confirm(f"Delete {endpoint_id}? Its URL stops working at once"):
        fail("not deleted")

    async def action(gw: Gateway) -> None:
        current = await gw.endpoints.get(endpoint_id, workspace=workspace)
        await delete_endpoint(current.id, endpoints=gw.endpoints, requests=gw.requests, store=gw.store)

    run(action)
    click.echo(f"deleted {endpoint_id}")


@endpoints.command("requests")
@click.argument("endpoint_id")
@click.option("--limit", type=int, default=20, show_default=True)
@workspace_option(optional=True)
@click.option("--json", "as_json", is_flag=True)
def requests(endpoint_id: str, limit: int, workspace: str | None, as_json: bool) -> None:
    """The endpoint's most recent requests, newest first."""

    async def action(gw: Gateway) -> list[dict[str, Any]]:
        record = await gw.endpoints.get(endpoint_id, workspace=workspace)
        return [iso_times(row, "time") for row in await gw.requests.list(record.id, limit)]

    def human(rows: list[dict[str, Any]]) -> str:
        return table(
            (
                (
                    r["time"],
                    r["method"],
                    r["path"],
                    r["status"],
                    f"{r['latency_ms']:.1f}ms",
                    r["verdict"],
                )
                for r in rows
            ),
            ["TIME", "METHOD", "PATH", "STATUS", "LATENCY", "VERIFIED"],
        )

    emit(run(action), as_json, human)
