"""`dify-gateway export | apply | snapshot save|list|diff|restore|delete`: configuration as code."""

from __future__ import annotations

import sys
from typing import Any

import click

from gateway.cli.common import emit, iso_times, run, table
from gateway.cli.workspaces import workspace_option
from gateway.configfile.applier import Prepared
from gateway.configfile.plan import Change
from gateway.configfile.service import ConfigService
from gateway.configfile.snapshots import SnapshotStore
from gateway.host.runtime import Gateway
from gateway.settings import reference_variables

__all__ = ["apply", "export", "snapshot"]

WORKSPACE = workspace_option()


def config_service(gw: Gateway) -> ConfigService:
    snapshots = SnapshotStore(gw.store, gw.box, gw.clock)
    return ConfigService(gw.apps, gw.endpoints, gw.registry, snapshots, gw.workspaces, gw.dify_plugins)


def _changes(changes: list[Change], *, dry_run: bool) -> str:
    if not changes:
        return "no changes: the gateway already matches"
    lead = "would " if dry_run else ""
    return "\n".join(f"{lead}{change.describe()}" for change in changes)


def _report(prepared: Prepared, *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        emit({"dry_run": dry_run, "changes": [c.to_dict() for c in prepared.changes]}, True)
    else:
        click.echo(_changes(prepared.changes, dry_run=dry_run))
    for endpoint_id, shown in sorted(prepared.generated.items()):
        for name in sorted(shown):  # made by the gateway, shown this once (like `endpoints create`)
            click.echo(f"{endpoint_id}: generated {name} (shown once): {shown[name]}", err=True)


@click.command("export")
@WORKSPACE
def export(workspace: str) -> None:
    """Write the gateway's apps and endpoints as YAML (secrets as ${VAR} references, never values).

    dify-gateway export > gateway.yaml
    """

    async def action(gw: Gateway) -> Any:
        return await config_service(gw).export(workspace)

    result = run(action)
    for endpoint_id in result.skipped:
        click.echo(f"warning: {endpoint_id} left out: its plugin is not installed", err=True)
    click.echo(result.text, nl=False)


@click.command("apply")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing")
@click.option("--prune", is_flag=True, help="Also delete the apps and endpoints the file lacks (in its workspace)")
@click.option("--workspace", default=None, help="The workspace (default: the file's)")
@click.option("--json", "as_json", is_flag=True)
def apply(file: Any, dry_run: bool, prune: bool, workspace: str | None, as_json: bool) -> None:
    """Make the gateway match FILE ('-': stdin); ${VAR} references come from the environment.

    The whole file is checked first: a problem anywhere refuses it all, with its line.
    """
    text = file.read()
    source = "stdin" if file is sys.stdin else str(getattr(file, "name", "the file"))

    async def action(gw: Gateway) -> Prepared:
        return await config_service(gw).apply(
            text, reference_variables(), dry_run=dry_run, prune=prune, workspace=workspace, source=source
        )

    _report(run(action), dry_run=dry_run, as_json=as_json)


@click.group("snapshot")
def snapshot() -> None:
    """Snapshots of the configuration, kept in the store with their secrets sealed."""


@snapshot.command("save")
@click.argument("tag")
@WORKSPACE
def snapshot_save(tag: str, workspace: str) -> None:
    """Keep the current apps and endpoints (keys and URLs included) under TAG."""

    async def action(gw: Gateway) -> dict[str, Any]:
        return await config_service(gw).save_snapshot(tag, workspace)

    saved = run(action)
    click.echo(f"saved snapshot {tag}: {saved['apps']} apps, {saved['endpoints']} endpoints")


@snapshot.command("list")
@WORKSPACE
@click.option("--json", "as_json", is_flag=True)
def snapshot_list(workspace: str, as_json: bool) -> None:
    """List the snapshots, oldest first."""

    async def action(gw: Gateway) -> list[dict[str, Any]]:
        return [iso_times(s, "created_at") for s in await config_service(gw).snapshots.list(workspace)]

    emit(
        run(action),
        as_json,
        lambda rows: table(
            ((s["tag"], s["created_at"], s["apps"], s["endpoints"]) for s in rows),
            ["TAG", "CREATED", "APPS", "ENDPOINTS"],
        ),
    )


@snapshot.command("diff")
@click.argument("first")
@click.argument("second", default="current")
@WORKSPACE
@click.option("--json", "as_json", is_flag=True)
def snapshot_diff(first: str, second: str, workspace: str, as_json: bool) -> None:
    """What restoring SECOND would change in a gateway as FIRST is ('current': the gateway now)."""

    async def action(gw: Gateway) -> list[Change]:
        return await config_service(gw).diff_snapshots(first, second, workspace)

    changes = run(action)
    if as_json:
        emit([c.to_dict() for c in changes], True)
    else:
        click.echo("\n".join(c.describe() for c in changes) if changes else "no differences")


@snapshot.command("restore")
@click.argument("tag")
@WORKSPACE
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing")
@click.option("--json", "as_json", is_flag=True)
def snapshot_restore(tag: str, workspace: str, dry_run: bool, as_json: bool) -> None:
    """Make the workspace as it was at TAG (keys and URLs too); what the snapshot lacks is deleted."""

    async def action(gw: Gateway) -> Prepared:
        return await config_service(gw).restore_snapshot(tag, workspace, dry_run=dry_run)

    _report(run(action), dry_run=dry_run, as_json=as_json)


@snapshot.command("delete")
@click.argument("tag")
@WORKSPACE
def snapshot_delete(tag: str, workspace: str) -> None:
    """Delete a snapshot."""

    async def action(gw: Gateway) -> None:
        await config_service(gw).snapshots.delete(tag, workspace)

    run(action)
    click.echo(f"deleted snapshot {tag}")
