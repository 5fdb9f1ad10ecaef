"""`dify-gateway apps add|list|show|update|remove|check`."""

from __future__ import annotations

import sys
from typing import Any

import click
from pydantic import SecretStr, ValidationError

from gateway.admin.usecases import remove_app
from gateway.cli.common import emit, fail, iso_times, run, table
from gateway.cli.duration import DURATION
from gateway.cli.workspaces import workspace_option
from gateway.exceptions import ValidationFailed
from gateway.host.runtime import Gateway
from gateway.records.apps import DEFAULT_BASE_URL, MOVED_WITHOUT_KEY, AppIn, AppRecord, AppService, AppUpdate


@click.group("apps")
def apps() -> None:
    """Dify apps the gateway can call."""


def _public(app: AppRecord) -> dict[str, Any]:
    """The app as the CLI prints it: key masked, times in ISO 8601."""
    return iso_times(AppService.public(app), "created_at", "updated_at")


def _human(app: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in app.items())


def _read_key(key: str | None) -> str:
    if key == "-":
        return sys.stdin.readline().strip()
    return key or str(click.prompt("App API key", hide_input=True))


@apps.command("add")
@click.argument("name")
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True, help="Dify Service API base URL")
@click.option(
    "--key", "key", default=None, envvar="DIFY_APP_KEY", help="App API key; '-' reads stdin, omit to be asked"
)
@click.option("--mode", default=None, help="App mode; detected from GET /info when omitted")
@click.option("--fallback", default=None, help="Another app to ask when this one fails before answering")
@workspace_option()
@click.option("--json", "as_json", is_flag=True)
def add(
    name: str, base_url: str, key: str | None, mode: str | None, fallback: str | None, workspace: str, as_json: bool
) -> None:
    """Register a Dify app under NAME (checks the key unless --mode is given)."""
    try:
        app = AppIn(name=name, base_url=base_url, api_key=SecretStr(_read_key(key)), mode=mode, fallback=fallback)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    async def action(gw: Gateway) -> dict[str, Any]:
        await gw.workspaces.require(workspace)
        return _public(await gw.apps.add(app, workspace=workspace))

    emit(run(action), as_json, _human)


@apps.command("list")
@workspace_option()
@click.option("--json", "as_json", is_flag=True)
def list_(workspace: str, as_json: bool) -> None:
    """List registered apps."""

    async def action(gw: Gateway) -> list[dict[str, Any]]:
        await gw.workspaces.require(workspace)
        return [_public(a) for a in await gw.apps.all(workspace)]

    emit(
        run(action),
        as_json,
        lambda rows: table(((a["name"], a["mode"], a["base_url"]) for a in rows), ["NAME", "MODE", "BASE URL"]),
    )


@apps.command("show")
@click.argument("name")
@workspace_option()
@click.option("--json", "as_json", is_flag=True)
def show(name: str, workspace: str, as_json: bool) -> None:
    """Show one app (the key stays masked)."""

    async def action(gw: Gateway) -> dict[str, Any]:
        await gw.workspaces.require(workspace)
        return _public(await gw.apps.get(name, workspace=workspace))

    emit(run(action), as_json, _human)


@apps.command("update")
@click.argument("name")
@click.option("--base-url", default=None)
@click.option("--key", "key", default=None, help="New API key; '-' reads stdin")
@click.option("--mode", default=None)
@click.option("--fallback", default=None, help="Another app's name; '' removes the fallback")
@workspace_option()
@click.option("--json", "as_json", is_flag=True)
def update(
    name: str,
    base_url: str | None,
    key: str | None,
    mode: str | None,
    fallback: str | None,
    workspace: str,
    as_json: bool,
) -> None:
    """Change an app's base URL, key, mode or fallback."""
    try:
        change = AppUpdate(
            base_url=base_url, api_key=SecretStr(_read_key(key)) if key else None, mode=mode, fallback=fallback
        )
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    async def action(gw: Gateway) -> dict[str, Any]:
        await gw.workspaces.require(workspace)
        try:
            return _public(await gw.apps.update(name, change, workspace=workspace))
        except ValidationFailed as exc:
            if exc.message != MOVED_WITHOUT_KEY:
                raise
            raise ValidationFailed(
                "a new --base-url needs the app's --key too: the current key is not sent to another host"
            ) from None

    emit(run(action), as_json, _human)


@apps.command("remove")
@click.argument("name")
@workspace_option()
def remove(name: str, workspace: str) -> None:
    """Remove an app no endpoint uses."""

    async def action(gw: Gateway) -> None:
        await gw.workspaces.require(workspace)
        await remove_app(name, apps=gw.apps, endpoints=gw.endpoints, workspace=workspace)

    run(action)
    click.echo(f"removed {name}")


@apps.command("add-key")
@click.argument("name")
@click.argument("key", required=False)
@click.option(
    "--grace",
    type=DURATION,
    default=None,
    help="How long the old key stays a fallback on 401 (90, 30m, 24h; default GATEWAY_ROTATION_GRACE)",
)
@workspace_option()
@click.option("--json", "as_json", is_flag=True)
def add_key(name: str, key: str | None, grace: float | None, workspace: str, as_json: bool) -> None:
    """Rotate NAME's key without downtime: KEY ('-': stdin; omit to be asked) is checked against the
    app with a real request, answers move to it, and the old key stays a fallback until the grace
    ends or `apps retire-key`."""
    new_key = _read_key(key)

    async def action(gw: Gateway) -> dict[str, Any]:
        await gw.workspaces.require(workspace)
        chosen = gw.settings.rotation_grace if grace is None else grace
        record = await gw.apps.add_key(name, new_key, grace=chosen, workspace=workspace)
        return iso_times(_public(record), "previous_key_until")

    emit(
        run(action),
        as_json,
        lambda app: (
            f"{name}: answers use the new key; the old one is a fallback until {app['previous_key_until']}"
            f" (dify-gateway apps retire-key {name} ends it sooner)"
        ),
    )


@apps.command("retire-key")
@click.argument("name")
@workspace_option()
def retire_key(name: str, workspace: str) -> None:
    """Stop using the key that `apps add-key` replaced (then revoke it in Dify)."""

    async def action(gw: Gateway) -> None:
        await gw.workspaces.require(workspace)
        await gw.apps.retire_key(name, workspace=workspace)

    run(action)
    click.echo(f"{name}: the previous key is retired; only the current key is used")


@apps.command("check")
@click.argument("name")
@workspace_option()
@click.option("--json", "as_json", is_flag=True)
def check(name: str, workspace: str, as_json: bool) -> None:
    """Call the app's GET /info with its key: proves the key works."""

    async def action(gw: Gateway) -> dict[str, Any]:
        await gw.workspaces.require(workspace)
        return await gw.apps.check(name, workspace=workspace)

    info = run(action)
    emit(info, as_json, lambda i: f"ok: {name} answers as {i.get('name', '?')!r} (mode {i.get('mode', '?')})")
