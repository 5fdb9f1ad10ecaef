"""Configuration as code, as the CLI and the admin API use it: export, apply, snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.configfile import yamlfile
from gateway.configfile.applier import ConfigApplier, Prepared
from gateway.configfile.exporter import current_state, from_file, to_file
from gateway.configfile.model import ConfigFile, State
from gateway.configfile.plan import Change, diff
from gateway.configfile.snapshots import SnapshotStore
from gateway.difyplugins.installs import DifyPlugins
from gateway.host.registry import PluginRegistry
from gateway.records.apps import AppService
from gateway.records.endpoints import EndpointService
from gateway.records.workspaces import WorkspaceService

__all__ = ["ConfigService", "Export"]

CURRENT = "current"  # `snapshot diff A current`: the gateway as it is now


class Export:
    """An export's text and the endpoints it left out (their plugin is not installed)."""

    def __init__(self, text: str, skipped: list[str]) -> None:
        self.text = text
        self.skipped = skipped


class ConfigService:
    def __init__(
        self,
        apps: AppService,
        endpoints: EndpointService,
        registry: PluginRegistry,
        snapshots: SnapshotStore,
        workspaces: WorkspaceService,
        dify_plugins: DifyPlugins | None = None,
    ) -> None:
        self._workspaces = workspaces  # every operation acts on one workspace, which must exist
        self._dify_plugins = dify_plugins  # installed Dify packages, listed in exports and checked by apply
        self._apps = apps
        self._endpoints = endpoints
        self._registry = registry
        self._applier = ConfigApplier(apps, endpoints, registry)
        self.snapshots = snapshots

    async def state(self, workspace: str = "default") -> tuple[State, list[str]]:
        await self._workspaces.require(workspace)
        return await current_state(
            self._apps, self._endpoints, self._registry, workspace=workspace, packages=await self._installed()
        )

    async def _installed(self) -> dict[str, str]:
        """The installed Dify plugin packages: author/name -> identity (none without the feature)."""
        if self._dify_plugins is None:
            return {}
        return {installation.key: installation.identity for installation in await self._dify_plugins.all()}

    async def export(self, workspace: str = "default") -> Export:
        """The workspace as a file: secrets as `${VAR}` references, never their values."""
        state, skipped = await self.state(workspace)
        config, _ = to_file(state)
        return Export(yamlfile.write(config), skipped)

    async def apply(
        self,
        text: str,
        variables: Mapping[str, str],
        *,
        dry_run: bool = False,
        prune: bool = False,
        workspace: str | None = None,
        source: str = "the file",
    ) -> Prepared:
        """Make the gateway match `text` (checked whole first; `ValidationFailed` with lines)."""
        parsed = yamlfile.read(text, source=source)
        config = parsed.config
        if workspace is not None and workspace != config.workspace:
            config = config.model_copy(update={"workspace": workspace})
        await self._workspaces.require(config.workspace)
        desired = from_file(config, variables, self._registry, line=parsed.line, source=source)
        prepared = await self._applier.prepare(
            desired,
            prune=prune,
            installed=await self._installed(),
            order=_order(config),
            line=parsed.line,
            source=source,
        )
        return prepared if dry_run else await self._applier.carry_out(prepared)

    async def save_snapshot(self, tag: str, workspace: str = "default") -> dict[str, Any]:
        state, _ = await self.state(workspace)
        return await self.snapshots.save(tag, state)

    async def diff_snapshots(self, first: str, second: str, workspace: str = "default") -> list[Change]:
        """What restoring `second` changes in a gateway that is as `first` (either may be `current`)."""
        return diff(
            await self._snapshot_state(first, workspace), await self._snapshot_state(second, workspace), prune=True
        )

    async def restore_snapshot(self, tag: str, workspace: str = "default", *, dry_run: bool = False) -> Prepared:
        """Apply the snapshot with its own secrets, pruning what it lacks: the workspace as it was."""
        await self._workspaces.require(workspace)
        config, secrets = await self.snapshots.load(tag, workspace)
        desired = from_file(config, secrets, self._registry, source=f"snapshot {tag!r}")
        # Packages upgraded since the snapshot are fine (endpoints are keyed by author/name); removed ones are not.
        prepared = await self._applier.prepare(
            desired, prune=True, installed=await self._installed(), pinned=False, source=f"snapshot {tag!r}"
        )
        return prepared if dry_run else await self._applier.carry_out(prepared)

    async def _snapshot_state(self, tag: str, workspace: str) -> State:
        if tag == CURRENT:
            return (await self.state(workspace))[0]
        config, secrets = await self.snapshots.load(tag, workspace)
        return from_file(config, secrets, self._registry, source=f"snapshot {tag!r}")


def _order(config: ConfigFile) -> dict[str, int]:
    order = {ep.id: index for index, ep in enumerate(config.endpoints)}
    order.update({"app:" + app.name: index for index, app in enumerate(config.apps)})
    order.update({"package:" + package.key: index for index, package in enumerate(config.packages)})
    return order
