"""Background services that other packages run inside the server (`dify_gateway.services` entry points).

A service is a factory `factory(host) -> Awaitable[None] | None`, called once the gateway is open;
what it returns runs beside the job workers until shutdown, and None means there is nothing to run
(e.g. not configured). This is how `bots` runs Discord bots inside `serve` without the gateway
importing it. A service that fails to load or crashes is logged and never takes the server down.

A service sees the gateway only through `Host`: its settings, endpoints and their plugin contexts,
the clock, and the store's atomic key operations with the gateway's one lock on them (`LeaseLock`,
e.g. for a lease that lets one replica of many hold a connection). It never reaches into the runtime.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

from gateway.host.context_factory import ContextFactory
from gateway.host.registry import PluginRegistry
from gateway.plugin import Clock, Context
from gateway.records.endpoints import EndpointService
from gateway.storage.base import Store
from gateway.storage.lock import LeaseLock, LockStore

__all__ = [
    "SERVICES_GROUP",
    "GatewayHost",
    "Host",
    "HostedEndpoint",
    "LeaseLock",
    "LockStore",
    "ServiceFactory",
    "start_services",
    "stop_services",
]

logger = logging.getLogger(__name__)

SERVICES_GROUP = "dify_gateway.services"


@dataclass(frozen=True, slots=True)
class HostedEndpoint:
    """An endpoint as a service sees it: `settings` is its plugin's settings model, secrets decrypted."""

    id: str
    plugin: str
    enabled: bool
    settings: Any


class Host(Protocol):
    """What a service may use of the gateway it runs in."""

    @property
    def clock(self) -> Clock:
        """The gateway's clock: services sleep and read time only through it."""
        ...

    @property
    def store(self) -> LockStore:
        """Atomic key operations, e.g. for a lease that lets one replica of many hold a connection."""
        ...

    def setting(self, name: str) -> str:
        """The value of `GATEWAY_<NAME>` declared by the service's package ("" when unset)."""
        ...

    async def endpoint(self, endpoint_id: str) -> HostedEndpoint:
        """The endpoint `endpoint_id` (enabled or not); `NotFound` when there is none."""
        ...

    async def context(self, endpoint_id: str) -> Context | None:
        """A fresh plugin context of the endpoint (settings and apps as they are now); None while it
        is disabled, `NotFound` when there is no such endpoint."""
        ...


class GatewayHost:
    """The `Host` the gateway gives its services."""

    def __init__(
        self,
        *,
        extra: Mapping[str, str],
        clock: Clock,
        store: Store,
        endpoints: EndpointService,
        registry: PluginRegistry,
        contexts: ContextFactory,
    ) -> None:
        self._extra = extra
        self._clock = clock
        self._store = store
        self._endpoints = endpoints
        self._registry = registry
        self._contexts = contexts

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def store(self) -> LockStore:
        return self._store

    def setting(self, name: str) -> str:
        return self._extra.get(name, "")

    async def endpoint(self, endpoint_id: str) -> HostedEndpoint:
        record = await self._endpoints.get(endpoint_id)
        plugin = self._registry.require(record.plugin)
        return HostedEndpoint(record.id, record.plugin, record.enabled, self._endpoints.settings(record, plugin))

    async def context(self, endpoint_id: str) -> Context | None:
        record = await self._endpoints.get(endpoint_id)
        if not record.enabled:
            return None
        return await self._contexts.build(record, self._registry.require(record.plugin))


ServiceFactory = Callable[[Host], "Awaitable[None] | None"]


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("service %s stopped with an error", task.get_name(), exc_info=task.exception())


def start_services(host: Host) -> list[asyncio.Task[None]]:
    """Start every installed service that has work here; the running tasks."""
    tasks: list[asyncio.Task[None]] = []
    for entry in entry_points(group=SERVICES_GROUP):
        try:
            factory: ServiceFactory = entry.load()
            work = factory(host)
        except Exception:
            logger.exception("service %r (%s) did not start", entry.name, entry.value)
            continue
        if work is not None:
            task: asyncio.Task[None] = asyncio.ensure_future(work)
            task.set_name(f"service-{entry.name}")
            task.add_done_callback(_log_end)
            tasks.append(task)
    return tasks


async def stop_services(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the services and wait until they have cleaned up."""
    for task in tasks:
        task.cancel()
    if tasks:
        # wait() rather than awaiting each task: a cancellation of the caller must not be swallowed.
        await asyncio.wait(tasks)
