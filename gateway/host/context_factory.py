"""Building the `PluginContext` of one handler call: the endpoint's settings, its apps, the shared parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import httpx

from gateway.clock import Clock
from gateway.dify.bridge import Bridge
from gateway.dify.client import DifyClient
from gateway.dify.conversations import ConversationLocks
from gateway.host.context import PluginContext
from gateway.jobs.queue import JobQueue
from gateway.jobs.workers import JobWorkers
from gateway.plugin import EndpointInfo, Plugin
from gateway.records.apps import AppRecord, AppService
from gateway.records.endpoints import EndpointRecord, EndpointService
from gateway.security.ssrf import UrlPolicy
from gateway.storage.base import Store
from gateway.usage.service import UsageService

__all__ = ["CONTEXT_CACHE_SIZE", "ContextFactory"]

CONTEXT_CACHE_SIZE = 1024  # endpoints whose request context is kept; the cache is emptied when full


@dataclass(frozen=True, slots=True)
class _Built:
    """A context and the records it was built from: it serves while the same records are current."""

    record: EndpointRecord
    plugin: Plugin
    apps: tuple[AppRecord, ...]
    context: PluginContext

    def built_from(self, record: EndpointRecord, plugin: Plugin, apps: tuple[AppRecord, ...]) -> bool:
        # Identity, not equality: a change anywhere reads (and caches) a new record object, and the
        # entry holds the old ones, so their identities can't be reused while it is kept.
        return (
            self.record is record
            and self.plugin is plugin
            and len(self.apps) == len(apps)
            and all(a is b for a, b in zip(self.apps, apps, strict=True))
        )


class ContextFactory:
    """Builds the context of each handler call (request, job, action, bot message) for an endpoint."""

    def __init__(
        self,
        *,
        apps: AppService,
        endpoints: EndpointService,
        dify: DifyClient,
        store: Store,
        locks: ConversationLocks,
        queue: JobQueue,
        workers: JobWorkers,
        http: httpx.AsyncClient,
        clock: Clock,
        callback_policy: UrlPolicy,
        guarded_http: httpx.AsyncClient,
        usage: UsageService | None = None,
        guarded_aiohttp: Callable[[], aiohttp.BaseConnector] | None = None,
    ) -> None:
        self._apps = apps
        self._endpoints = endpoints
        self._dify = dify
        self._store = store
        self._locks = locks
        self._queue = queue
        self._workers = workers
        self._http = http
        self._guarded_http = guarded_http  # `ctx.http` of endpoints whose settings a workspace token wrote
        self._guarded_aiohttp = guarded_aiohttp  # and their `ctx.aiohttp_connector()`
        self._clock = clock
        self._callback_policy = callback_policy
        self._usage = usage
        self._built: dict[str, _Built] = {}

    @property
    def dify(self) -> DifyClient:
        """The Dify client (read by the admin overview for the answers in flight)."""
        return self._dify

    async def build(self, record: EndpointRecord, plugin: Plugin) -> PluginContext:
        """The context of one handler call for `record` (its settings and apps as they are now)."""
        records, fallbacks = await self._app_records(record)
        return self._assemble(record, plugin, records, fallbacks)

    async def for_request(self, record: EndpointRecord, plugin: Plugin) -> PluginContext:
        """`build`, reusing the context built for the same endpoint record, plugin and app records.

        The request path resolves the same cached records again and again; a change to the
        endpoint or to one of its apps (or its fallback) is a new record, so a new context."""
        records, fallbacks = await self._app_records(record)
        apps = (*records.values(), *fallbacks.values())
        built = self._built.get(record.id)
        if built is not None and built.built_from(record, plugin, apps):
            return built.context
        context = self._assemble(record, plugin, records, fallbacks)
        if len(self._built) >= CONTEXT_CACHE_SIZE:
            self._built.clear()
        self._built[record.id] = _Built(record, plugin, apps, context)
        return context

    async def _app_records(self, record: EndpointRecord) -> tuple[dict[str, AppRecord], dict[str, AppRecord]]:
        records: dict[str, AppRecord] = {}
        fallbacks: dict[str, AppRecord] = {}
        for name in record.apps:
            app = await self._apps.cached(name, workspace=record.workspace)
            if app is None:
                continue
            records[name] = app
            if app.fallback and (fallback := await self._apps.cached(app.fallback, workspace=record.workspace)):
                fallbacks[name] = fallback
        return records, fallbacks

    def _assemble(
        self, record: EndpointRecord, plugin: Plugin, records: dict[str, AppRecord], fallbacks: dict[str, AppRecord]
    ) -> PluginContext:
        settings = self._endpoints.settings(record, plugin)
        query_input = getattr(settings, "query_input", None)  # the same setting in every plugin that has it
        bridge = Bridge(
            endpoint_id=record.id,
            records=records,
            dify=self._dify,
            store=self._store,
            locks=self._locks,
            key_of=self._apps.api_key,
            fallbacks=fallbacks,
            query_input=query_input if isinstance(query_input, str) else None,
            describe=self._apps.described,
            previous_key_of=self._apps.previous_key,
            meter=self._usage.meter(workspace=record.workspace, endpoint_id=record.id, plugin=record.plugin)
            if self._usage
            else None,
        )
        return PluginContext(
            plugin=plugin,
            endpoint=EndpointInfo(record.id, record.plugin, self._endpoints.url(record), record.apps),
            settings=settings,
            store=self._store,
            queue=self._queue,
            workers=self._workers,
            http=self._guarded_http if record.guarded else self._http,
            aiohttp_connector=self._guarded_aiohttp if record.guarded else None,
            clock=self._clock,
            apps=bridge,
            callback_policy=self._callback_policy,
            secrets=lambda setting: self._endpoints.secret_values(record, plugin, setting),
            workspace=record.workspace,
        )
