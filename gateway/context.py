"""The `Context` a plugin's handlers receive, with its permissions enforced."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx

from gateway.clock import Clock
from gateway.exceptions import NotFound, PermissionDenied
from gateway.plugin import AppInfo, EndpointInfo, Permission, Plugin
from gateway.storage.base import Store

if TYPE_CHECKING:
    from gateway.jobs import JobQueue

__all__ = ["BoundApps", "EndpointStorage", "PluginContext", "PluginJobs"]


class EndpointStorage:
    """Key-value storage under the endpoint's own prefix: plugins can't see each other's keys."""

    def __init__(self, store: Store, endpoint_id: str) -> None:
        self._store = store
        self.prefix = f"kv:{endpoint_id}:"

    async def get(self, key: str) -> str | None:
        return await self._store.kv_get(self.prefix + key)

    async def set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        await self._store.kv_set(self.prefix + key, value, ttl=ttl)

    async def set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool:
        return await self._store.kv_set_if_absent(self.prefix + key, value, ttl=ttl)

    async def delete(self, key: str) -> bool:
        return await self._store.kv_delete(self.prefix + key)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        return await self._store.kv_incr(self.prefix + key, amount, ttl=ttl)


class PluginJobs:
    """Enqueues the plugin's own job handlers for one endpoint."""

    def __init__(self, queue: JobQueue, plugin: Plugin, endpoint_id: str) -> None:
        self._queue = queue
        self._plugin = plugin
        self._endpoint_id = endpoint_id

    async def enqueue(
        self, name: str, payload: dict[str, Any], *, key: str | None = None, delay: float = 0.0, max_attempts: int = 8
    ) -> str:
        if name not in self._plugin.jobs:
            raise NotFound(f"plugin {self._plugin.name!r} has no job handler {name!r}")
        job = await self._queue.enqueue_plugin_job(
            self._endpoint_id, name, payload, key=key, delay=delay, max_attempts=max_attempts
        )
        return job.id


class BoundApps:
    def __init__(self, apps: dict[str, AppInfo]) -> None:
        self._apps = apps

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._apps)

    def get(self, name: str | None = None) -> AppInfo:
        if name is None and self._apps:
            return next(iter(self._apps.values()))
        if name is not None and name in self._apps:
            return self._apps[name]
        raise NotFound(f"no app {name!r} is bound to this endpoint")


class PluginContext:
    """What one handler call may use; each part checks the plugin declared its permission."""

    def __init__(
        self,
        *,
        plugin: Plugin,
        endpoint: EndpointInfo,
        settings: Any,
        store: Store,
        queue: JobQueue,
        http: httpx.AsyncClient,
        clock: Clock,
        apps: BoundApps,
    ) -> None:
        self._plugin = plugin
        self._endpoint = endpoint
        self._settings = settings
        self._store = store
        self._queue = queue
        self._http = http
        self._clock = clock
        self._apps = apps
        self._logger = logging.LoggerAdapter(
            logging.getLogger(f"gateway.plugins.{plugin.name}"), {"endpoint_id": endpoint.id}
        )

    def _require(self, permission: Permission) -> None:
        if permission not in self._plugin.permissions:
            raise PermissionDenied(
                f"plugin {self._plugin.name!r} did not declare the {permission.value!r} permission",
                endpoint_id=self._endpoint.id,
            )

    @property
    def endpoint(self) -> EndpointInfo:
        return self._endpoint

    @property
    def settings(self) -> Any:
        return self._settings

    @property
    def apps(self) -> BoundApps:
        self._require(Permission.APPS)
        return self._apps

    @property
    def storage(self) -> EndpointStorage:
        self._require(Permission.STORAGE)
        return EndpointStorage(self._store, self._endpoint.id)

    @property
    def jobs(self) -> PluginJobs:
        self._require(Permission.JOBS)
        return PluginJobs(self._queue, self._plugin, self._endpoint.id)

    @property
    def http(self) -> httpx.AsyncClient:
        self._require(Permission.HTTP)
        return self._http

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        return self._logger

    @property
    def clock(self) -> Clock:
        return self._clock
