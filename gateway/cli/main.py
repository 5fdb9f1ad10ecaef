"""`dify-gateway`: serve the gateway and manage apps, endpoints, plugins and jobs."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import click

import gateway
from gateway.admin.schemas import job_out
from gateway.admin.usecases import find_job, list_jobs, reseal_secrets
from gateway.cli.actions import action_groups
from gateway.cli.apps import apps
from gateway.cli.common import emit, fail, iso_times, load_settings, run, table
from gateway.cli.configcmd import apply as config_apply, export as config_export, snapshot
from gateway.cli.dev import demo, simulate_dify
from gateway.cli.endpoints import endpoints
from gateway.cli.plugins import plugins
from gateway.cli.usage import budgets, usage
from gateway.cli.workspaces import tokens, workspaces
from gateway.configfile.snapshots import SnapshotStore
from gateway.exceptions import NotFound
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import Gateway
from gateway.logs import configure_logging


@click.group()
@click.version_option(gateway.__version__, prog_name="dify-gateway")
def cli() -> None:
    """Webhook endpoint gateway and chat-bot bridge for Dify apps.

    Configuration comes from GATEWAY_* environment variables (see the README).
    """


@cli.command()
@click.option("--host", default=None, help="Interface to listen on (GATEWAY_HOST, default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="Port (GATEWAY_PORT, default 8000)")
@click.option(
    "--fd",
    type=int,
    default=None,
    help="Serve on this inherited listening socket instead of --host/--port (socket activation, process managers)",
)
def serve(host: str | None, port: int | None, fd: int | None) -> None:
    """Run the gateway (HTTP server and job workers)."""
    import socket

    from gateway.http.app import create_app
    from gateway.http.server import GatewayServer, server_config

    overrides = {"host": host, "port": port}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    sockets = None
    if fd is not None:
        try:
            sockets = [socket.socket(fileno=fd)]
        except OSError as exc:
            fail(f"--fd {fd} is not an open socket: {exc.strerror or exc}")
        host_, port_ = sockets[0].getsockname()[:2]
        where = f"http://{host_}:{port_}"
    else:
        where = f"http://{settings.host}:{settings.port}"
    click.echo(f"dify-gateway {gateway.__version__} on {where} (store: {_store_label(settings.store)})")
    GatewayServer(server_config(app, settings)).run(sockets=sockets)


def _store_label(url: str) -> str:
    # Never print credentials that may sit in a redis:// URL.
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


@cli.group("jobs")
def jobs() -> None:
    """Background jobs and dead letters."""


_job_workspace = click.option(
    "--workspace", default=None, help="Only the jobs of this workspace's endpoints (default: every workspace)"
)


async def _check_job(gw: Gateway, job_id: str, workspace: str | None) -> None:
    """NotFound unless the job belongs to `workspace` (any job passes without one)."""
    if workspace is not None:
        await gw.workspaces.require(workspace)
        await find_job(job_id, store=gw.store, endpoints=gw.endpoints, workspace=workspace, operator=False)


@jobs.command("list")
@click.option("--state", type=click.Choice(["queued", "running", "done", "dead"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@_job_workspace
@click.option("--json", "as_json", is_flag=True)
def jobs_list(state: str | None, limit: int, workspace: str | None, as_json: bool) -> None:
    """List jobs, newest first (--state dead: the dead letters)."""

    async def action(gw: Gateway) -> list[dict[str, Any]]:
        if workspace is None:
            found = await gw.store.job_list(state=state, limit=limit)  # type: ignore[arg-type]
        else:
            await gw.workspaces.require(workspace)
            found = await list_jobs(
                store=gw.store,
                endpoints=gw.endpoints,
                workspace=workspace,
                operator=False,  # jobs of deleted endpoints belong to no workspace
                state=state,  # type: ignore[arg-type]
                limit=limit,
            )
        return [iso_times(job_out(j), *JOB_TIMES) for j in found]

    emit(
        run(action),
        as_json,
        lambda rows: table(
            (
                (j["id"], j["kind"], j["state"], j["attempts"], j["endpoint_id"], (j["last_error"] or "")[:60])
                for j in rows
            ),
            ["ID", "KIND", "STATE", "ATTEMPTS", "ENDPOINT", "LAST ERROR"],
        ),
    )


JOB_TIMES = ("due_at", "created_at", "updated_at", "lease_until")


@jobs.command("show")
@click.argument("job_id")
@_job_workspace
@click.option("--json", "as_json", is_flag=True)
def jobs_show(job_id: str, workspace: str | None, as_json: bool) -> None:
    """One job: state, attempts, errors and times (never its payload or result, which may hold secrets)."""

    async def action(gw: Gateway) -> dict[str, Any]:
        await _check_job(gw, job_id, workspace)
        job = await gw.store.job_get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        detail = {**job_out(job), "key": job.key, "lease_owner": job.lease_owner, "lease_until": job.lease_until}
        return iso_times(detail, *JOB_TIMES)

    emit(run(action), as_json, lambda job: "\n".join(f"{k}: {'' if v is None else v}" for k, v in job.items()))


@jobs.command("replay")
@click.argument("job_id")
@_job_workspace
def jobs_replay(job_id: str, workspace: str | None) -> None:
    """Queue a dead job again."""

    async def action(gw: Gateway) -> bool:
        await _check_job(gw, job_id, workspace)
        return await gw.store.job_replay(job_id, gw.clock.time())

    if not run(action):
        fail(f"{job_id} is not a dead job")
    click.echo(f"{job_id} queued again")


@cli.group("secrets")
def secrets_group() -> None:
    """The gateway's secret key."""


@secrets_group.command("reseal")
@click.option("--json", "as_json", is_flag=True)
def secrets_reseal(as_json: bool) -> None:
    """Re-encrypt stored secrets under the newest GATEWAY_SECRET_KEY.

    Rotate the key by listing the new one after the old (GATEWAY_SECRET_KEY=old,new), run this,
    rotate the endpoints it names (their URLs are signed with the old key), then drop the old key.
    """

    async def action(gw: Gateway) -> dict[str, Any]:
        report = await reseal_secrets(apps=gw.apps, endpoints=gw.endpoints)
        report["snapshot_values_resealed"] = await SnapshotStore(gw.store, gw.box, gw.clock).reseal()
        return report

    def human(report: dict[str, Any]) -> str:
        lines = [
            f"apps re-encrypted: {', '.join(report['apps_resealed']) or 'none'}",
            f"endpoint values re-encrypted: {report['endpoint_values_resealed']}",
            f"snapshot values re-encrypted: {report['snapshot_values_resealed']}",
        ]
        if report["endpoints_to_rotate"]:
            lines.append("URLs still signed with an older key; rotate them before dropping it:")
            lines += [f"  dify-gateway endpoints rotate {ep}" for ep in report["endpoints_to_rotate"]]
        else:
            lines.append("every URL is signed with the newest key: older keys can be dropped")
        return "\n".join(lines)

    emit(run(action), as_json, human)


cli.add_command(apps)
cli.add_command(plugins)
cli.add_command(endpoints)
cli.add_command(simulate_dify)
cli.add_command(demo)
cli.add_command(usage)
cli.add_command(budgets)
cli.add_command(workspaces)
cli.add_command(tokens)
cli.add_command(config_export)
cli.add_command(config_apply)
cli.add_command(snapshot)


# -- commands from other packages --------------------------------------------------------------
COMMANDS_GROUP = "dify_gateway.commands"


def extension_commands() -> list[click.Command]:
    """Click commands other packages add through the `dify_gateway.commands` entry points
    (e.g. `bot` from `bots.cli`); the gateway never imports them by name."""
    found: list[click.Command] = []
    for entry in entry_points(group=COMMANDS_GROUP):
        try:
            command = entry.load()
        except Exception as exc:  # a broken extension must not take the whole CLI down
            click.echo(f"warning: command {entry.name!r} ({entry.value}) did not load: {exc}", err=True)
            continue
        if isinstance(command, click.Command):
            found.append(command)
        else:
            click.echo(f"warning: {entry.value} is not a click command; ignored", err=True)
    return found


def main() -> None:
    configure_logging("warning")  # commands warn through the safe formatter; `serve` sets its own level
    for group in action_groups(PluginRegistry.from_entry_points()):
        if group.name not in cli.commands:
            cli.add_command(group)
    for command in extension_commands():
        if command.name not in cli.commands:
            cli.add_command(command)
    cli(prog_name="dify-gateway")
