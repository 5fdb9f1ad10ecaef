"""`DifyRuntime`: the installed Dify packages of one gateway process, as plugins and processes.

- `register(spec)` makes an installed package a gateway plugin (`author/name`) in the registry;
- `prepare(spec)` gets it ready to run: its venv built under the plugin data directory (shared
  with every package of the same requirements and Python, so an upgrade that keeps its
  dependencies installs nothing);
- a plugin's process starts with its first request (`connection`), and is supervised until
  `aclose` (the gateway's shutdown) or `discard` (removal);
- `statuses()` and `metric_lines()` show each process's state.

Installations made on another replica are found through `PackageSource` (the installation records
in the shared store): `find(name)` loads one the registry does not know yet, and `refresh()`
follows upgrades and removals made elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.clock import Clock
from gateway.difyplugins.runtime.connection import PluginConnection
from gateway.difyplugins.runtime.endpoint import DifyEndpointPlugin
from gateway.difyplugins.runtime.process import PluginProcess, ProcessPolicy
from gateway.difyplugins.runtime.python import find_python
from gateway.difyplugins.runtime.spec import PluginSpec
from gateway.difyplugins.runtime.status import RuntimeStatus
from gateway.difyplugins.runtime.storage import InstallationStorage
from gateway.difyplugins.runtime.venv import PluginVenvs, requirements_of
from gateway.exceptions import PluginUnavailable
from gateway.host.registry import PluginRegistry
from gateway.storage.base import Store

__all__ = ["DifyRuntime", "PackageSource", "RuntimeConfig"]

logger = logging.getLogger(__name__)


class PackageSource(Protocol):
    """Where the installed packages are recorded (shared by every replica)."""

    async def load(self, key: str) -> PluginSpec | None:
        """The installed package `author/name`, or None."""
        ...

    async def keys(self) -> list[str]:
        """Every installed package's `author/name`."""
        ...


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """data_dir: packages and venvs (on the data volume); python: GATEWAY_PLUGIN_PYTHON; wheels: offline installs."""

    data_dir: Path
    python: str | None = None
    wheels: Path | None = None
    policy: ProcessPolicy = ProcessPolicy()


@dataclass(slots=True)
class _Running:
    plugin: DifyEndpointPlugin
    process: PluginProcess | None = None


class DifyRuntime:
    def __init__(
        self,
        config: RuntimeConfig,
        *,
        registry: PluginRegistry,
        store: Store,
        clock: Clock,
        source: PackageSource | None = None,
    ) -> None:
        self.config = config
        self._registry = registry
        self._store = store
        self._clock = clock
        self._source = source
        self._venvs = PluginVenvs(config.data_dir / "venvs", wheels=config.wheels)
        self._plugins: dict[str, _Running] = {}
        self._python: tuple[str, str] | None = None
        self._starting: dict[str, asyncio.Lock] = {}
        self._closed = False

    # -- installation hooks ------------------------------------------------------------------------

    async def python(self) -> tuple[str, str]:
        if self._python is None:
            self._python = await find_python(self.config.python)
        return self._python

    async def prepare(self, spec: PluginSpec, *, wheels: Path | None = None) -> Path:
        """Build (or reuse) the venv of the package's requirements; the venv's Python."""
        if not spec.directory.is_dir():
            raise PluginUnavailable(f"the files of plugin {spec.key} are not on this machine ({spec.directory})")
        python, version = await self.python()
        return await self._venvs.ensure(requirements_of(spec.directory), python, version, wheels=wheels)

    def register(self, spec: PluginSpec) -> DifyEndpointPlugin:
        """The package as a gateway plugin, in the registry (replacing the one of an older version)."""
        running = self._plugins.get(spec.key)
        if running is not None and running.plugin.identity == spec.identity:
            return running.plugin
        plugin = DifyEndpointPlugin(
            spec,
            connect=self.connection,
            storage=self._storage,
            request_timeout=self.config.policy.request_timeout,
        )
        if running is not None and running.process is not None:
            # An upgrade: the old version's process ends; the next request starts the new one.
            old = running.process
            asyncio.get_running_loop().create_task(old.aclose())
        self._plugins[spec.key] = _Running(plugin)
        self._registry.replace(plugin)
        return plugin

    async def discard(self, key: str, identity: str | None = None) -> None:
        """Stop the package's process and take its plugin out of the registry (removed, or `identity`
        upgraded away: then only if that version is still the one registered here)."""
        running = self._plugins.get(key)
        if running is None or (identity is not None and running.plugin.identity != identity):
            return
        del self._plugins[key]
        self._registry.remove(key)
        if running.process is not None:
            await running.process.aclose()

    # -- lookups -----------------------------------------------------------------------------------

    async def load_installed(self) -> list[str]:
        """Register every installed package (at start-up); the keys that failed are logged and skipped."""
        if self._source is None:
            return []
        loaded = []
        for key in await self._source.keys():
            if await self.find(key) is not None:
                loaded.append(key)
        return loaded

    async def find(self, key: str) -> DifyEndpointPlugin | None:
        """The plugin of `key`, loading the installation from the shared records if this process does not know it."""
        running = self._plugins.get(key)
        if running is not None:
            return running.plugin
        if self._source is None or "/" not in key:
            return None
        try:
            spec = await self._source.load(key)
        except Exception:  # a broken record must not take the gateway down with it
            logger.exception("the installed Dify package %s could not be loaded", key)
            return None
        return self.register(spec) if spec is not None else None

    async def refresh(self) -> None:
        """Follow what other processes installed, upgraded or removed (the shared records)."""
        if self._source is None:
            return
        keys = set(await self._source.keys())
        for key in list(self._plugins):
            if key not in keys:
                await self.discard(key)
        for key in keys:
            spec = await self._source.load(key)
            if spec is not None:
                self.register(spec)

    # -- processes ---------------------------------------------------------------------------------

    async def connection(self, key: str) -> PluginConnection:
        running = self._plugins.get(key)
        if running is None or self._closed:
            raise PluginUnavailable(f"plugin {key} is not installed here", retry_after=5.0)
        if running.process is None:
            lock = self._starting.setdefault(key, asyncio.Lock())
            async with lock:
                if running.process is None:
                    try:
                        python = await self.prepare(running.plugin.spec)
                    except Exception:
                        logger.exception("plugin %s could not be prepared to run", key)
                        raise PluginUnavailable(f"plugin {key} could not be started", retry_after=30.0) from None
                    running.process = PluginProcess(
                        name=key,
                        directory=running.plugin.spec.directory,
                        python=python,
                        clock=self._clock,
                        policy=self.config.policy,
                    )
        assert running.process is not None
        return await running.process.connection()

    def _storage(self, key: str, limit: int) -> InstallationStorage:
        return InstallationStorage(self._store, key, limit)

    def statuses(self) -> list[RuntimeStatus]:
        out = []
        for key, running in sorted(self._plugins.items()):
            out.append(running.process.status() if running.process else RuntimeStatus(plugin=key, state="stopped"))
        return out

    def status(self, key: str) -> RuntimeStatus | None:
        running = self._plugins.get(key)
        if running is None:
            return None
        return running.process.status() if running.process else RuntimeStatus(plugin=key, state="stopped")

    def metric_lines(self) -> list[str]:
        """Prometheus lines: each plugin's state (1 for the current one), restarts and requests in flight."""
        lines = [
            "# HELP gateway_dify_plugin_state State of each Dify plugin's process (1 = current state).",
            "# TYPE gateway_dify_plugin_state gauge",
        ]
        statuses = self.statuses()
        for status in statuses:
            lines.append(f'gateway_dify_plugin_state{{plugin="{_label(status.plugin)}",state="{status.state}"}} 1')
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
        return lines

    async def aclose(self) -> None:
        """Stop every plugin process (the gateway is stopping)."""
        self._closed = True
        processes = [r.process for r in self._plugins.values() if r.process is not None]
        await asyncio.gather(*(p.aclose() for p in processes), return_exceptions=True)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
