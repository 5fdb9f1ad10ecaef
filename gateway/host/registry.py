"""Plugin discovery: built-in and third-party plugins alike come from one entry-point group."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from gateway.exceptions import ConfigurationError
from gateway.plugin import Plugin

__all__ = ["ENTRY_POINT_GROUP", "PluginLoadError", "PluginRegistry"]

ENTRY_POINT_GROUP = "dify_gateway.plugins"
logger = logging.getLogger(__name__)


class PluginLoadError(ConfigurationError):
    """A plugin's entry point could not be imported or did not name a `Plugin`."""


class PluginRegistry:
    """The plugins one app knows, by name. Built per app (and per test), never module-global."""

    def __init__(self, plugins: Iterable[Plugin] = ()) -> None:
        self._plugins: dict[str, Plugin] = {}
        self._installed: dict[str, Plugin] = {}  # installed packages' plugins (see `replace`)
        for plugin in plugins:
            self.add(plugin)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP, *, strict: bool = False) -> PluginRegistry:
        """Load every plugin of `group`. A broken plugin is logged and skipped unless `strict`."""
        registry = cls()
        for entry in sorted(entry_points(group=group), key=lambda e: e.name):
            try:
                registry.add(load_entry_point(entry))
            except PluginLoadError:
                if strict:
                    raise
                logger.exception("plugin %r was not loaded", entry.name)
        return registry

    def add(self, plugin: Plugin) -> None:
        if not isinstance(plugin, Plugin):
            raise PluginLoadError(f"{plugin!r} is not a gateway.plugin.Plugin")
        if plugin.name in self._plugins and self._plugins[plugin.name] is not plugin:
            raise PluginLoadError(f"two plugins are named {plugin.name!r}")
        self._plugins[plugin.name] = plugin

    def replace(self, plugin: Plugin) -> None:
        """Add an installed package's plugin (a Dify package, `author/name`), or put it in the place
        of its older version. Found by `get` like any plugin; listed apart, with the installations."""
        if not isinstance(plugin, Plugin):
            raise PluginLoadError(f"{plugin!r} is not a gateway.plugin.Plugin")
        if plugin.name in self._plugins:
            raise PluginLoadError(f"an installed package can't take the name of plugin {plugin.name!r}")
        self._installed[plugin.name] = plugin

    def remove(self, name: str) -> None:
        """Forget an installed package's plugin (removed); nothing when there is none."""
        self._installed.pop(name, None)

    def get(self, name: str) -> Plugin | None:
        return self._plugins.get(name) or self._installed.get(name)

    def require(self, name: str) -> Plugin:
        plugin = self.get(name)
        if plugin is None:
            known = ", ".join(sorted(self._plugins)) or "none"
            raise ConfigurationError(f"no plugin named {name!r} is installed (installed: {known})")
        return plugin

    def plugins(self) -> list[Plugin]:
        return sorted(self._plugins.values(), key=lambda p: p.name)

    def names(self) -> list[str]:
        return sorted(self._plugins)


def load_entry_point(entry: EntryPoint) -> Plugin:
    try:
        value = entry.load()
    except Exception as exc:  # an arbitrary third-party import can fail in any way
        raise PluginLoadError(f"plugin {entry.name!r} ({entry.value}) failed to import: {exc!r}") from exc
    if not isinstance(value, Plugin):
        raise PluginLoadError(f"entry point {entry.name!r} ({entry.value}) is not a gateway.plugin.Plugin")
    if value.name != entry.name:
        raise PluginLoadError(f"entry point {entry.name!r} names a plugin called {value.name!r}")
    return value
