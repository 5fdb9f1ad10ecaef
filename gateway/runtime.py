"""The gateway's collaborators, built once from `Settings` and shared by the app, workers and CLI."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.apps import AppService
from gateway.clock import Clock, SystemClock
from gateway.context import BoundApps, PluginContext
from gateway.endpoints import EndpointRecord, EndpointService
from gateway.exceptions import UpstreamError
from gateway.jobs import JobHandlerFn, JobQueue, JobWorkers
from gateway.metrics import Metrics
from gateway.plugin import AppInfo, EndpointInfo, JobError, JobInfo, Plugin
from gateway.ratelimit import RateLimiter
from gateway.registry import PluginRegistry
from gateway.requestlog import RequestLog
from gateway.security.crypto import SecretBox
from gateway.security.tokens import EndpointTokens
from gateway.settings import Settings
from gateway.storage import open_store
from gateway.storage.base import Job, Store

__all__ = ["Gateway"]

logger = logging.getLogger(__name__)


@dataclass
class Gateway:
    """Everything a running gateway (or a CLI command) works with. Build it with `Gateway.open`."""

    settings: Settings
    clock: Clock
    store: Store
    registry: PluginRegistry
    http: httpx.AsyncClient
    box: SecretBox
    tokens: EndpointTokens
    apps: AppService
    endpoints: EndpointService
    requests: RequestLog
    limiter: RateLimiter
    queue: JobQueue
    metrics: Metrics
    job_handlers: dict[str, JobHandlerFn] = field(default_factory=dict)
    _owns: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        registry: PluginRegistry | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> Gateway:
        """Connect the store and build the services. Collaborators passed in are not closed by `aclose`."""
        clock = clock or SystemClock()
        owns: list[Callable[[], Awaitable[None]]] = []
        if store is None:
            store = await open_store(settings.store, clock=clock)
            owns.append(store.aclose)
        if http is None:
            http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=60.0), follow_redirects=False)
            owns.append(http.aclose)
        registry = registry if registry is not None else PluginRegistry.from_entry_points()
        box = SecretBox(settings.secret_keys)
        tokens = EndpointTokens(settings.secret_keys)

        async def fetch_info(base_url: str, api_key: str) -> dict[str, Any]:
            try:
                response = await http.get(f"{base_url}/info", headers={"authorization": f"Bearer {api_key}"})
            except httpx.HTTPError as exc:
                raise UpstreamError(f"the Dify API at {base_url} is unreachable ({exc.__class__.__name__})") from None
            if response.status_code != 200:
                raise UpstreamError(
                    f"the Dify API answered {response.status_code} to GET /info", upstream_status=response.status_code
                )
            info: dict[str, Any] = response.json()
            return info

        gateway = cls(
            settings=settings,
            clock=clock,
            store=store,
            registry=registry,
            http=http,
            box=box,
            tokens=tokens,
            apps=AppService(store, box, clock, fetch_info),
            endpoints=EndpointService(
                store,
                registry,
                box,
                tokens,
                clock,
                public_url=settings.public_url,
                rotation_grace=settings.rotation_grace,
            ),
            requests=RequestLog(store, settings.request_log_size),
            limiter=RateLimiter(store, clock),
            queue=JobQueue(store, clock),
            metrics=Metrics(),
            _owns=owns,
        )
        gateway.job_handlers["plugin"] = gateway._run_plugin_job
        return gateway

    async def aclose(self) -> None:
        await self.requests.aclose()
        for close in reversed(self._owns):
            await close()
        self._owns.clear()

    async def remove_app(self, name: str) -> None:
        """Remove an app, refusing while endpoints are bound to it."""
        bound = [e.id for e in await self.endpoints.all() if name in e.apps]
        await self.apps.remove(name, bound_to=bound)

    async def delete_endpoint(self, endpoint_id: str) -> EndpointRecord:
        """Delete an endpoint with its request log and its plugin storage."""
        record = await self.endpoints.delete(endpoint_id)
        await self.requests.drop(record.id)
        await self.store.kv_delete_prefix(f"kv:{record.id}:")
        return record

    def workers(self) -> JobWorkers:
        return JobWorkers(
            store=self.store,
            queue=self.queue,
            clock=self.clock,
            handlers=self.job_handlers,
            metrics=self.metrics,
            concurrency=self.settings.workers,
            lease=self.settings.job_lease,
            poll_interval=self.settings.job_poll_interval,
        )

    async def context(self, record: EndpointRecord, plugin: Plugin) -> PluginContext:
        """The context of one handler call for `record`."""
        apps: dict[str, AppInfo] = {}
        for name in record.apps:
            try:
                app = await self.apps.get(name)
            except Exception:
                continue
            apps[name] = AppInfo(app.name, app.mode, app.base_url)
        return PluginContext(
            plugin=plugin,
            endpoint=EndpointInfo(record.id, record.plugin, self.endpoints.url(record), record.apps),
            settings=self.endpoints.settings(record, plugin),
            store=self.store,
            queue=self.queue,
            http=self.http,
            clock=self.clock,
            apps=BoundApps(apps),
        )

    async def _run_plugin_job(self, job: Job) -> dict[str, Any] | None:
        """Run a plugin's job handler, if its endpoint still exists and is enabled."""
        if job.endpoint_id is None:
            raise JobError("a plugin job without an endpoint")
        doc = await self.store.doc_get("endpoints", job.endpoint_id)
        if doc is None or not doc["enabled"]:
            raise JobError(f"endpoint {job.endpoint_id} is gone or disabled")
        record = EndpointRecord.from_doc(doc)
        plugin = self.registry.get(record.plugin)
        name = str(job.payload.get("handler", ""))
        if plugin is None or name not in plugin.jobs:
            raise JobError(f"plugin {record.plugin!r} has no job handler {name!r}")
        ctx = await self.context(record, plugin)
        key = job.key.split(":", 3)[3] if job.key and job.key.count(":") >= 3 else None
        info = JobInfo(job.id, name, dict(job.payload.get("data") or {}), job.attempts, key)
        result = await plugin.jobs[name](info, ctx)
        return result if isinstance(result, dict) else None
