"""`dify-gateway workspaces create|list|delete` and `dify-gateway tokens create|list|revoke`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from pydantic import ValidationError

from gateway.admin.usecases import create_token, delete_workspace
from gateway.cli.common import emit, fail, iso_times, run, table
from gateway.host.runtime import Gateway
from gateway.records.admintokens import ROLES, AdminTokenIn, AdminTokenRecord, AdminTokenService, parse_duration
from gateway.records.workspaces import WorkspaceIn

__all__ = ["tokens", "workspace_option", "workspaces"]

TOKEN_TIMES = ("created_at", "expires_at", "revoked_at")


def workspace_option(*, optional: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--workspace W` for the apps and endpoints commands (`optional`: any workspace when omitted)."""
    if optional:
        return click.option(
            "--workspace",
            default=None,
            help="Refuse the endpoint unless it belongs to this workspace (ids are unique across workspaces)",
        )
    return click.option("--workspace", default="default", show_default=True, help="The workspace to act on")


def _invalid(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


@click.group("workspaces")
def workspaces() -> None:
    """Workspaces: teams sharing the gateway, each with its own apps, endpoints and tokens."""


@workspaces.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def workspaces_create(name: str, as_json: bool) -> None:
    """Create the workspace NAME."""
    try:
        spec = WorkspaceIn(name=name)
    except ValidationError as exc:
        fail(_invalid(exc))

    async def action(gw: Gateway) -> dict[str, Any]:
        return iso_times((await gw.workspaces.create(spec)).to_doc(), "created_at")

    emit(run(action), as_json, lambda w: f"created workspace {w['name']}")


@workspaces.command("list")
@click.option("--json", "as_json", is_flag=True)
def workspaces_list(as_json: bool) -> None:
    """List workspaces with how many apps and endpoints each holds."""

    async def action(gw: Gateway) -> list[dict[str, Any]]:
        apps, endpoints = await gw.apps.all(), await gw.endpoints.all()
        return [
            {
                **iso_times(w.to_doc(), "created_at"),
                "apps": sum(a.workspace == w.name for a in apps),
                "endpoints": sum(e.workspace == w.name for e in endpoints),
            }
            for w in await gw.workspaces.all()
        ]

    emit(
        run(action),
        as_json,
        lambda rows: table(((w["name"], w["apps"], w["endpoints"]) for w in rows), ["NAME", "APPS", "ENDPOINTS"]),
    )


@workspaces.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask")
def workspaces_delete(name: str, yes: bool) -> None:
    """Delete an empty workspace and revoke its tokens (refused while it holds apps or endpoints)."""
    if not yes and not click.confirm(f"Delete workspace {name} and its admin tokens?"):
        fail("not deleted")

    async def action(gw: Gateway) -> None:
        await delete_workspace(gw, name)

    run(action)
    click.echo(f"deleted workspace {name}")


@click.group("tokens")
def tokens() -> None:
    """Admin API tokens for one workspace (the operator token, GATEWAY_ADMIN_TOKEN, manages them)."""


def _public(gw: Gateway, record: AdminTokenRecord) -> dict[str, Any]:
    return iso_times(AdminTokenService.public(record, gw.clock.time()), *TOKEN_TIMES)


@tokens.command("create")
@click.option("--workspace", required=True, help="The workspace the token acts on")
@click.option("--role", type=click.Choice(ROLES), default="admin", show_default=True, help="viewer: read only")
@click.option("--expires", default=None, metavar="DURATION", help="e.g. 3600, 90m, 12h, 30d, 2w (omit: never)")
@click.option("--label", default="", help="What the token is for, e.g. 'ci'")
@click.option("--json", "as_json", is_flag=True)
def tokens_create(workspace: str, role: str, expires: str | None, label: str, as_json: bool) -> None:
    """Create a token; it is printed this once (the gateway keeps only its hash)."""

    async def action(gw: Gateway) -> dict[str, Any]:
        try:
            spec = AdminTokenIn.model_validate(
                {
                    "workspace": workspace,
                    "role": role,
                    "expires_in_seconds": None if expires is None else parse_duration(expires),
                    "label": label,
                }
            )
        except ValidationError as exc:
            fail(_invalid(exc))
        record, token = await create_token(spec, workspaces=gw.workspaces, tokens=gw.admin_tokens)
        return {**_public(gw, record), "token": token}

    def human(t: dict[str, Any]) -> str:
        until = f", expires {t['expires_at']} (UTC)" if t["expires_at"] else ""
        return f"{t['token']}\n(token {t['id']}: {t['role']} of workspace {t['workspace']}{until}; shown once, keep it)"

    emit(run(action), as_json, human)


@tokens.command("list")
@click.option("--workspace", default=None, help="Only this workspace's tokens")
@click.option("--json", "as_json", is_flag=True)
def tokens_list(workspace: str | None, as_json: bool) -> None:
    """List tokens (their ids, never the tokens)."""

    async def action(gw: Gateway) -> list[dict[str, Any]]:
        return [_public(gw, r) for r in await gw.admin_tokens.all(workspace)]

    emit(
        run(action),
        as_json,
        lambda rows: table(
            ((t["id"], t["workspace"], t["role"], t["state"], t["expires_at"], t["label"]) for t in rows),
            ["ID", "WORKSPACE", "ROLE", "STATE", "EXPIRES", "LABEL"],
        ),
    )


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token: it is refused (401) from the next request on, on every replica."""

    async def action(gw: Gateway) -> None:
        await gw.admin_tokens.revoke(token_id)

    run(action)
    click.echo(f"revoked {token_id}")
