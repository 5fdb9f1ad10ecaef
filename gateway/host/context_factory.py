"""Building the `PluginContext` of one handler call: the endpoint's settings, its apps, the shared parts."""

from __future__ import annotations

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

__all__ = ["ContextFactory"]


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
    ) -> None:
        self._apps = apps
        self._endpoints = endpoints
        self._dify = dify
        self._store = store
        self._locks = locks
        self._queue = queue
        self._workers = workers
        self._http = http
        self._clock = clock
        self._callback_policy = callback_policy

    async def build(self, record: EndpointRecord, plugin: Plugin) -> PluginContext:
        """The context of one handler call for `record` (its settings and apps as they are now)."""
        records: dict[str, AppRecord] = {}
        fallbacks: dict[str, AppRecord] = {}
        for name in record.apps:
            app = await self._apps.cached(name)
            if app is None:
                continue
            records[name] = app
            if app.fallback and (fallback := await self._apps.cached(app.fallback)) is not None:
                fallbacks[name] = fallback
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
        )
        return PluginContext(
            plugin=plugin,
            endpoint=EndpointInfo(record.id, record.plugin, self._endpoints.url(record), record.apps),
            settings=settings,
            store=self._store,
            queue=self._queue,
            workers=self._workers,
            http=self._http,
            clock=self._clock,
            apps=bridge,
            callback_policy=self._callback_policy,
        )
