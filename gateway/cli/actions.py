"""Plugin actions as commands: `dify-gateway PLUGIN ACTION ENDPOINT [--option value ...]`.

One click group per installed plugin that declares actions (e.g. `dify-gateway slack manifest`),
built from the registry when the CLI starts, so third-party plugins get commands too.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from gateway.admin.usecases import run_action
from gateway.cli.common import run
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import Gateway
from gateway.plugin import Action, ActionResult, Plugin

__all__ = ["action_groups"]


def _command(plugin: Plugin, action: Action) -> click.Command:
    def callback(endpoint: str, as_json: bool, **options: str | bool | None) -> None:
        args: dict[str, str] = {}
        for name, value in options.items():
            if isinstance(value, bool):
                if value:
                    args[name.replace("_", "-")] = "true"
            elif value is not None:
                args[name.replace("_", "-")] = value

        async def act(gw: Gateway) -> str | dict[str, Any] | ActionResult:
            return await run_action(
                endpoint, action.name, args, endpoints=gw.endpoints, registry=gw.registry, contexts=gw.contexts
            )

        _print(run(act), as_json)

    params: list[click.Parameter] = [
        click.Argument(["endpoint"]),
        click.Option(["--json", "as_json"], is_flag=True, help="Print JSON"),
    ]
    params += [click.Option([f"--{name}"], default=None, help=text) for name, text in action.options.items()]
    params += [click.Option([f"--{name}"], is_flag=True, help=text) for name, text in action.flags.items()]
    return click.Command(action.name, callback=callback, params=params, help=action.help)


def _print(result: str | dict[str, Any] | ActionResult, as_json: bool) -> None:
    """An action's result: text as is, JSON with --json; exit 1 when the action failed."""
    if not isinstance(result, ActionResult):
        click.echo(result if isinstance(result, str) and not as_json else json.dumps(result, indent=2))
        return
    if not as_json:
        click.echo(result.text)
    elif result.events is not None:
        for event in result.events:  # JSON Lines: one event per line
            click.echo(json.dumps(event, ensure_ascii=False))
    else:
        click.echo(json.dumps(result.data, indent=2, ensure_ascii=False))
    if not result.ok:
        sys.exit(1)


def action_groups(registry: PluginRegistry) -> list[click.Group]:
    groups = []
    for plugin in registry.plugins():
        if plugin.actions:
            group = click.Group(plugin.name, help=f"Actions of {plugin.name} endpoints.")
            for action in plugin.actions.values():
                group.add_command(_command(plugin, action))
            groups.append(group)
    return groups
