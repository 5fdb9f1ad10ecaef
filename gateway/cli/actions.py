"""Plugin actions as commands: `dify-gateway PLUGIN ACTION ENDPOINT [--option value ...]`.

One click group per installed plugin that declares actions (e.g. `dify-gateway slack manifest`),
built from the registry when the CLI starts, so third-party plugins get commands too.
"""

from __future__ import annotations

import json
from typing import Any

import click

from gateway.cli.common import run
from gateway.plugin import Action, Plugin
from gateway.registry import PluginRegistry
from gateway.runtime import Gateway

__all__ = ["action_groups"]


def _command(plugin: Plugin, action: Action) -> click.Command:
    def callback(endpoint: str, as_json: bool, **options: str | None) -> None:
        args = {name.replace("_", "-"): value for name, value in options.items() if value is not None}

        async def act(gw: Gateway) -> str | dict[str, Any]:
            return await gw.run_action(endpoint, action.name, args)

        result = run(act)
        click.echo(result if isinstance(result, str) and not as_json else json.dumps(result, indent=2))

    params: list[click.Parameter] = [
        click.Argument(["endpoint"]),
        click.Option(["--json", "as_json"], is_flag=True, help="Print JSON"),
    ]
    params += [click.Option([f"--{name}"], default=None, help=text) for name, text in action.options.items()]
    return click.Command(action.name, callback=callback, params=params, help=action.help)


def action_groups(registry: PluginRegistry) -> list[click.Group]:
    groups = []
    for plugin in registry.plugins():
        if plugin.actions:
            group = click.Group(plugin.name, help=f"Actions of {plugin.name} endpoints.")
            for action in plugin.actions.values():
                group.add_command(_command(plugin, action))
            groups.append(group)
    return groups
