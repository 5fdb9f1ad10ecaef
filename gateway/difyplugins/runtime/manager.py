"""`DifyRuntime`: the installed Dify packages of one gateway process, as plugins and processes.

- `register(spec)` makes an installed package a gateway plugin (`author/name`) in the registry;
- `build(spec)` gets it ready to run: its venv, under the venv directory on the data volume,
  shared with every package of the same requirements and Python (an upgrade that keeps its
  dependencies installs nothing);
- a plugin's process starts with its first request (`connection`) and is supervised until
  `aclose` (the gateway's shutdown) or `unload` (removed, or upgraded away);
- `statuses()` and `metric_lines()` show each process's state.

It is also the `PluginInstaller` of the installations (`prepare`, `discard`, `runtime_state`).
Installations made by another process (the CLI, another replica) are found in the shared
installation records: `find(key)` loads one the registry does not know yet, and `refresh()`
follows upgrades and removals made elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.clock import Clock
from gateway.difyplugins.runtime.connection import PluginConnection
from gateway.difyplugins.runtime.endpoint import DifyEndpointPlugin
from gateway.difyplugins.runtime.process import PluginProcess, ProcessPolicy
from gateway.difyplugins.runtime.python import find_python
from gateway.difyplugins.runtime.spec import PluginSpec, spec_of
from gateway.difyplugins.runtime.status import RuntimeStatus
from gateway.difyplugins.runtime.storage import InstallationStorage
from gateway.difyplugins.runtime.venv import PluginVenvs, requirements_of
from gateway.exceptions import PluginUnavailable
from gateway.host.registry import PluginRegistry
from gateway.plugin import Request, Response
from gateway.records.installations import REMOTE_DEBUG_ORIGIN, Installation, InstallationRecords
from gateway.storage.base import Store

__all__ = ["DifyRuntime", "RuntimeConfig"]

logger = logging.getLogger(__name__)

_STATE_KEY = "difyrt:state:"  # + author/name: the runtime state a serving process published


class RemoteConnections(Protocol):
    """The plugins connected for remote debugging (gateway/difyplugins/debug): their connection
    here, the answer of the replica holding it, their state for listings."""

    async def connect(self, key: str) -> PluginConnection: ...
    async def forward(self, key: str, request: Request) -> Response | None: ...
    def state(self, key: str) -> str: ...
    async def refresh(self, keys: Iterable[str]) -> None: ...
    def drop(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """venv_dir: the plugin venvs (on the data volume); python: GATEWAY_PLUGIN_PYTHON (found when
    empty); wheels: a directory of wheels for offline installs."""

    venv_dir: Path
    python: str = ""
    wheels: Path | None = None
    policy: ProcessPolicy = field(default_factory=ProcessPolicy)
    follow_interval: float = 5.0  # how often a serving process re-reads the installation records


@dataclass(frozen=True, slots=True)
class _Published:
    identity: str
    state: str


@dataclass(slots=True)
class _Loaded:
    plugin: DifyEndpointPlugin
    process: PluginProcess | None = None
    recorded: bool = False  # from the installation records (so it goes when its record goes)


class DifyRuntime:
    def __init__(
        self,
        config: RuntimeConfig,
        *,
        registry: PluginRegistry,
        store: Store,
        clock: Clock,
        records: InstallationRecords | None = None,
        remote: RemoteConnections | None = None,
    ) -> None:
        self.config = config
        self._remote = remote
        self._registry = registry
        self._store = store
        self._clock = clock
        self._records = records
        self._venvs = PluginVenvs(config.venv_dir, wheels=config.wheels)
        self._loaded: dict[str, _Loaded] = {}
        self._python: tuple[str, str] | None = None
        self._starting: dict[str, asyncio.Lock] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._follower: asyncio.Task[None] | None = None
        self._published: dict[str, _Published] = {}
        self._closed = False

    # -- PluginInstaller (called around installs, upgrades and removals) ---------------------------

    async def prepare(self, installation: Installation, *, wheels: Path | None = None) -> None:
        """Build the venv of an installation (refusing the install when pip fails) and register it."""
        spec = spec_of(installation)
        await self.build(spec, wheels=wheels)
        self.register(spec, recorded=True)

    async def discard(self, installation: Installation) -> None:
        """The installation was upgraded away or removed: stop its process and unregister it here."""
        await self.unload(installation.key, installation.identity)
        if installation.origin == REMOTE_DEBUG_ORIGIN and self._remote is not None:
            self._remote.drop(installation.key)

    def runtime_state(self, installation: Installation) -> str | None:
        """This process's state of the plugin when it runs it here; else the state a serving process
        published (the CLI runs no plugin: it shows the server's); None when nobody runs it."""
        loaded = self._loaded.get(installation.key)
        if loaded is not None and loaded.process is not None and loaded.plugin.identity == installation.identity:
            return loaded.process.status().state
        if installation.origin == REMOTE_DEBUG_ORIGIN:
            return self._remote.state(installation.key) if self._remote is not None else "disconnected"
        published = self._published.get(installation.key)
        return published.state if published is not None and published.identity == installation.identity else None

    # -- plugins -----------------------------------------------------------------------------------

    async def python(self) -> tuple[str, str]:
        if self._python is None:
            self._python = await find_python(self.config.python or None)
        return self._python

    async def build(self, spec: PluginSpec, *, wheels: Path | None = None) -> Path:
        """Build (or reuse) the venv of the package's requirements; the venv's Python."""
        if not spec.directory.is_dir():
            raise PluginUnavailable(f"the files of plugin {spec.key} are not on this machine", retry_after=30.0)
        python, version = await self.python()
        return await self._venvs.ensure(requirements_of(spec.directory), python, version, wheels=wheels)

    def register(self, spec: PluginSpec, *, recorded: bool = False) -> DifyEndpointPlugin:
        """The package as a gateway plugin, in the registry (replacing the one of an older version).
        `recorded`: it comes from the installation records, and is unloaded when its record goes."""
        loaded = self._loaded.get(spec.key)
        if loaded is not None and loaded.plugin.identity == spec.identity:
            loaded.recorded = loaded.recorded or recorded
            return loaded.plugin
        remote = self._remote if spec.origin == REMOTE_DEBUG_ORIGIN else None
        plugin = DifyEndpointPlugin(
            spec,
            # A plugin being debugged runs on its developer's machine: its connection is the one
            # it opened (here, or on the replica it is forwarded to), never a process of ours.
            connect=remote.connect if remote is not None else self.connection,
            storage=self._storage,
            request_timeout=self.config.policy.request_timeout,
            forward=functools.partial(remote.forward, spec.key) if remote is not None else None,
        )
        if loaded is not None and loaded.process is not None:
            self._retire(loaded.process)  # an upgrade: the next request starts the new version
        self._loaded[spec.key] = _Loaded(plugin, recorded=recorded)
        self._registry.replace(plugin)
        return plugin

    async def unload(self, key: str, identity: str | None = None) -> None:
        """Stop the package's process and take its plugin out of the registry (only the version
        `identity`, when given: an upgrade's new version stays)."""
        loaded = self._loaded.get(key)
        if loaded is None or (identity is not None and loaded.plugin.identity != identity):
            return
        del self._loaded[key]
        self._registry.remove(key)
        if loaded.process is not None:
            await loaded.process.aclose()

    def _retire(self, process: PluginProcess) -> None:
        task = asyncio.get_running_loop().create_task(process.aclose(), name=f"retire plugin {process.name}")
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    # -- the shared records ------------------------------------------------------------------------

    async def load_installed(self) -> list[str]:
        """Register every installed package (at start-up) and read the runtime states serving
        processes published; what could not be loaded is logged and skipped."""
        if self._records is None:
            return []
        loaded = []
        installations = await self._records.all()
        if self._remote is not None:
            await self._remote.refresh(i.key for i in installations if i.origin == REMOTE_DEBUG_ORIGIN)
        for installation in installations:
            published = await self._store.kv_get(_STATE_KEY + installation.key)
            if published is not None:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    document = json.loads(published)
                    self._published[installation.key] = _Published(document["identity"], document["state"])
            try:
                self.register(spec_of(installation), recorded=True)
            except Exception:  # a broken record must not keep the gateway from starting
                logger.exception("the installed Dify package %s could not be loaded", installation.key)
                continue
            loaded.append(installation.key)
        return loaded

    async def find(self, key: str) -> DifyEndpointPlugin | None:
        """The plugin of `key`, loading its installation record when this process does not know it yet."""
        loaded = self._loaded.get(key)
        if loaded is not None:
            return loaded.plugin
        if self._records is None or "/" not in key:
            return None
        installation = await self._records.get(key)
        return self.register(spec_of(installation), recorded=True) if installation is not None else None

    async def refresh(self) -> None:
        """Follow the installs, upgrades and removals other processes made (the shared records)."""
        if self._records is None:
            return
        installations = {i.key: i for i in await self._records.all()}
        if self._remote is not None:
            await self._remote.refresh(k for k, i in installations.items() if i.origin == REMOTE_DEBUG_ORIGIN)
        for key, loaded in list(self._loaded.items()):
            if loaded.recorded and key not in installations:
                await self.unload(key)
        for installation in installations.values():
            self.register(spec_of(installation), recorded=True)

    async def _follow(self) -> None:
        while True:
            try:
                await self._publish()
                await self._clock.idle(self.config.follow_interval)
                await self.refresh()
            except Exception:  # the store may be briefly away; the next round tries again
                logger.exception("reading the Dify plugin installations failed")

    async def _publish(self) -> None:
        """Tell other processes (`plugins list` in the CLI) the state of the plugins run here."""
        ttl = self.config.follow_interval * 3
        for key, loaded in list(self._loaded.items()):
            if loaded.process is None:
                continue
            status = loaded.process.status()
            document = {"identity": loaded.plugin.identity, **status.to_dict()}
            await self._store.kv_set(_STATE_KEY + key, json.dumps(document), ttl=ttl)

    # -- processes ---------------------------------------------------------------------------------

    async def connection(self, key: str) -> PluginConnection:
        """The connection to the plugin's process, starting it (venv first) on first use.

        A process that serves Dify plugins also starts following the installation records, so an
        upgrade or removal made by the CLI or another replica reaches it within `follow_interval`."""
        if self._follower is None and self._records is not None and not self._closed:
            self._follower = asyncio.get_running_loop().create_task(self._follow(), name="dify-plugin-records")
        loaded = self._loaded.get(key)
        if loaded is None or self._closed:
            raise PluginUnavailable(f"plugin {key} is not loaded", retry_after=5.0)
        if loaded.process is None:
            async with self._starting.setdefault(key, asyncio.Lock()):
                if loaded.process is None:
                    spec = loaded.plugin.spec
                    try:
                        python = await self.build(spec)
                    except PluginUnavailable:
                        raise
                    except Exception:
                        logger.exception("plugin %s could not be prepared to run", key)
                        raise PluginUnavailable(f"plugin {key} could not be started", retry_after=30.0) from None
                    loaded.process = PluginProcess(
                        name=key, directory=spec.directory, python=python, clock=self._clock, policy=self.config.policy
                    )
        assert loaded.process is not None
        return await loaded.process.connection()

    def _storage(self, key: str, limit: int) -> InstallationStorage:
        return InstallationStorage(self._store, key, limit)

    def status(self, key: str) -> RuntimeStatus:
        loaded = self._loaded.get(key)
        if loaded is None or loaded.process is None:
            return RuntimeStatus(plugin=key, state="stopped")
        return loaded.process.status()

    def statuses(self) -> list[RuntimeStatus]:
        """The state of each plugin process (plugins connected for remote debugging have none)."""
        return [self.status(key) for key in sorted(self._loaded) if not self._is_remote(key)]

    def _is_remote(self, key: str) -> bool:
        return self._loaded[key].plugin.spec.origin == REMOTE_DEBUG_ORIGIN

    def metric_lines(self) -> list[str]:
        """Prometheus lines: each plugin's state (1 for the current one), restarts and requests in flight."""
        statuses = self.statuses()
        lines = [
            "# HELP gateway_dify_plugin_state State of each Dify plugin's process (1 = its current state).",
            "# TYPE gateway_dify_plugin_state gauge",
        ]
        lines += [f'gateway_dify_plugin_state{{plugin="{_label(s.plugin)}",state="{s.state}"}} 1' for s in statuses]
        lines += [
            "# HELP gateway_dify_plugin_restarts_total Restarts of each Dify plugin's process.",
            "# TYPE gateway_dify_plugin_restarts_total counter",
        ]
        lines += [f'gateway_dify_plugin_restarts_total{{plugin="{_label(s.plugin)}"}} {s.restarts}' for s in statuses]
        lines += [
            "# HELP gateway_dify_plugin_sessions Requests in flight in each Dify plugin's process.",
            "# TYPE gateway_dify_plugin_sessions gauge",
        ]
        lines += [f'gateway_dify_plugin_sessions{{plugin="{_label(s.plugin)}"}} {s.sessions}' for s in statuses]
        if self._remote is not None:
            lines += [
                "# HELP gateway_dify_plugin_debug_connected Whether each plugin run for remote debugging is connected.",
                "# TYPE gateway_dify_plugin_debug_connected gauge",
            ]
            for key in sorted(key for key in self._loaded if self._is_remote(key)):
                connected = int(self._remote.state(key) == "connected")
                lines.append(f'gateway_dify_plugin_debug_connected{{plugin="{_label(key)}"}} {connected}')
        return lines

    async def aclose(self) -> None:
        """Stop every plugin process (the gateway is stopping)."""
        self._closed = True
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        processes = [loaded.process for loaded in self._loaded.values() if loaded.process is not None]
        await asyncio.gather(*(p.aclose() for p in processes), *self._retired, return_exceptions=True)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
