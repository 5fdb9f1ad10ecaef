"""The gateway's collaborators, built once from `Settings` and shared by the app, workers and CLI."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.clock import Clock, SystemClock
from gateway.delivery.callbacks import CallbackSender
from gateway.delivery.retry import next_callback_delay
from gateway.dify.bridge import Bridge
from gateway.dify.client import DifyClient, make_http_client
from gateway.dify.conversations import ConversationLocks
from gateway.dify.models import DifyApp
from gateway.exceptions import BadRequest, NotFound, Overloaded
from gateway.host.context import CALLBACK_JOB, CALLBACK_SECRETS, PluginContext
from gateway.host.registry import PluginRegistry
from gateway.jobs.lease import JobLease
from gateway.jobs.workers import Emit, JobHandlerFn, JobQueue, JobWorkers
from gateway.metrics import Metrics
from gateway.plugin import ActionResult, EndpointInfo, JobError, JobInfo, Plugin, RetryJob
from gateway.records.apps import AppRecord, AppService
from gateway.records.endpoints import EndpointRecord, EndpointService
from gateway.records.requestlog import RequestLog
from gateway.security.crypto import SecretBox
from gateway.security.ratelimit import RateLimiter
from gateway.security.sealed import unseal
from gateway.security.signatures import parse_webhook_secret
from gateway.security.ssrf import UrlPolicy
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
    dify: DifyClient
    locks: ConversationLocks
    workers: JobWorkers
    callback_policy: UrlPolicy
    callbacks: CallbackSender
    job_handlers: dict[str, JobHandlerFn] = field(default_factory=dict)
    rand: Callable[[], float] = random.random  # jitter of callback retries
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
            http = make_http_client(use_aiohttp=settings.use_aiohttp, max_connections=settings.dify_connections)
            owns.append(http.aclose)
        registry = registry if registry is not None else PluginRegistry.from_entry_points()
        box = SecretBox(settings.secret_keys)
        tokens = EndpointTokens(settings.secret_keys)
        queue = JobQueue(store, clock, box)
        metrics = Metrics()
        handlers: dict[str, JobHandlerFn] = {}
        policy = UrlPolicy(
            allow_http=settings.callback_allow_http, allowed_hosts=frozenset(settings.callback_allow_hosts)
        )

        dify = DifyClient(
            http,
            clock=clock,
            breaker_threshold=settings.dify_breaker_failures,
            breaker_cool_down=settings.dify_breaker_cool_down,
            max_concurrent_answers=settings.max_concurrent_answers,
            answer_queue_timeout=settings.answer_queue_timeout,
            idle_timeout=settings.dify_idle_timeout,
        )

        async def fetch_info(name: str, base_url: str, api_key: str) -> dict[str, Any]:
            # The mode is what we are finding out; any valid one lets the client build the call.
            info = await dify.info(DifyApp(name, base_url, api_key, "chat"))
            return dataclasses.asdict(info)

        async def fetch_parameters(name: str, base_url: str, api_key: str) -> dict[str, Any]:
            return await dify.parameters(DifyApp(name, base_url, api_key, "chat"))

        apps = AppService(store, box, clock, fetch_info, fetch_parameters)

        gateway = cls(
            settings=settings,
            clock=clock,
            store=store,
            registry=registry,
            http=http,
            box=box,
            tokens=tokens,
            apps=apps,
            endpoints=EndpointService(
                store,
                registry,
                box,
                tokens,
                clock,
                public_url=settings.public_url,
                rotation_grace=settings.rotation_grace,
                apps=apps,
            ),
            requests=RequestLog(store, settings.request_log_size, clock),
            limiter=RateLimiter(store, clock),
            queue=queue,
            metrics=metrics,
            dify=dify,
            # A crashed answer frees its conversation as soon as its job can be taken over.
            locks=ConversationLocks(store, clock, lease=settings.job_lease),
            workers=JobWorkers(
                store=store,
                queue=queue,
                clock=clock,
                handlers=handlers,
                metrics=metrics,
                concurrency=settings.workers,
                # Deliveries never wait behind answers: they have workers of their own.
                dedicated={CALLBACK_JOB: settings.callback_workers},
                lease=settings.job_lease,
                poll_interval=settings.job_poll_interval,
                retention=settings.job_retention,
            ),
            job_handlers=handlers,
            callback_policy=policy,
            callbacks=CallbackSender(policy=policy, clock=clock),
            _owns=owns,
        )
        handlers["plugin"] = gateway._run_plugin_job
        handlers[CALLBACK_JOB] = gateway._deliver_callback
        owns.append(gateway.callbacks.aclose)
        return gateway

    async def aclose(self) -> None:
        await self.workers.cancel_local()
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

    async def reseal_secrets(self) -> dict[str, Any]:
        """After a new GATEWAY_SECRET_KEY was added (newest last): re-encrypt every stored secret
        under it, and list the endpoints whose URL is still signed with an older key."""
        apps = [app.name for app in await self.apps.all() if await self.apps.reseal(app.name)]
        values, stale_urls = 0, []
        for record in await self.endpoints.all():
            changed, stale = await self.endpoints.reseal(record.id)
            values += changed
            if stale:
                stale_urls.append(record.id)
        return {"apps_resealed": apps, "endpoint_values_resealed": values, "endpoints_to_rotate": stale_urls}

    async def run_action(
        self, endpoint_id: str, name: str, args: Mapping[str, str]
    ) -> str | dict[str, Any] | ActionResult:
        """Run the plugin action `name` on an endpoint (CLI `dify-gateway PLUGIN ACTION ID`, admin API)."""
        record = await self.endpoints.get(endpoint_id)
        plugin = self.registry.require(record.plugin)
        action = plugin.actions.get(name)
        if action is None:
            raise NotFound(f"plugin {plugin.name!r} has no action {name!r}")
        unknown = set(args) - set(action.options) - set(action.flags)
        if unknown:
            raise BadRequest(f"unknown options for {name}: {', '.join(sorted(unknown))}")
        not_flags = sorted(flag for flag in action.flags if args.get(flag, "false") not in ("true", "false"))
        if not_flags:
            raise BadRequest(f'{", ".join(not_flags)} of {name} must be "true" or "false"')
        return await action.handler(await self.context(record, plugin), args)

    async def context(self, record: EndpointRecord, plugin: Plugin) -> PluginContext:
        """The context of one handler call for `record`."""
        records: dict[str, AppRecord] = {}
        fallbacks: dict[str, AppRecord] = {}
        for name in record.apps:
            app = await self.apps.cached(name)
            if app is None:
                continue
            records[name] = app
            if app.fallback and (fallback := await self.apps.cached(app.fallback)) is not None:
                fallbacks[name] = fallback
        settings = self.endpoints.settings(record, plugin)
        query_input = getattr(settings, "query_input", None)  # the same setting in every plugin that has it
        bridge = Bridge(
            endpoint_id=record.id,
            records=records,
            dify=self.dify,
            store=self.store,
            locks=self.locks,
            key_of=self.apps.api_key,
            fallbacks=fallbacks,
            query_input=query_input if isinstance(query_input, str) else None,
            describe=self.apps.described,
        )
        return PluginContext(
            plugin=plugin,
            endpoint=EndpointInfo(record.id, record.plugin, self.endpoints.url(record), record.apps),
            settings=settings,
            store=self.store,
            queue=self.queue,
            workers=self.workers,
            http=self.http,
            clock=self.clock,
            apps=bridge,
            callback_policy=self.callback_policy,
        )

    async def _job_endpoint(self, job: Job, *, enabled: bool) -> tuple[EndpointRecord, Plugin]:
        """The endpoint (and its plugin) a job works for; `JobError` when it is gone (or disabled)."""
        doc = await self.store.doc_get("endpoints", job.endpoint_id) if job.endpoint_id else None
        if doc is None or (enabled and not doc["enabled"]):
            raise JobError(f"endpoint {job.endpoint_id} is gone{' or disabled' if enabled else ''}")
        record = EndpointRecord.from_doc(doc)
        plugin = self.registry.get(record.plugin)
        if plugin is None:
            raise JobError(f"plugin {record.plugin!r} is not installed")
        return record, plugin

    async def _run_plugin_job(self, job: Job, emit: Emit, lease: JobLease) -> dict[str, Any] | None:
        """Run a plugin's job handler, if its endpoint still exists and is enabled."""
        record, plugin = await self._job_endpoint(job, enabled=True)
        name = str(job.payload.get("handler", ""))
        if name not in plugin.jobs:
            raise JobError(f"plugin {record.plugin!r} has no job handler {name!r}")
        ctx = await self.context(record, plugin)
        key = job.key.split(":", 3)[3] if job.key and job.key.count(":") >= 3 else None
        data = unseal(self.box, job.id, job.payload.get("data") or {}, plugin.job_secrets.get(name, ()))
        info = JobInfo(job.id, name, data, job.attempts, key, emit, lease)
        try:
            result = await plugin.jobs[name](info, ctx)
        except Overloaded as exc:  # this process is full: run the job again later, never fail it
            raise RetryJob(exc.message, after=exc.retry_after) from None
        return result if isinstance(result, dict) else None

    async def _deliver_callback(self, job: Job, emit: Emit, lease: JobLease) -> dict[str, Any] | None:
        """One attempt at a signed callback; the schedule decides when (or whether) to try again."""
        payload = unseal(self.box, job.id, job.payload, CALLBACK_SECRETS)
        # A disabled endpoint still calls back: the work was accepted before it was turned off.
        record, plugin = await self._job_endpoint(job, enabled=False)
        settings = self.endpoints.settings(record, plugin)
        secret = getattr(settings, str(payload.get("setting", "secret")), None)
        if secret is None:
            raise JobError("the endpoint has no callback signing secret")
        key = parse_webhook_secret(secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret))
        outcome = await self.callbacks.send(
            payload["url"], payload["body"].encode(), msg_id=payload["msg_id"], secrets=[key]
        )
        if outcome.kind == "delivered":
            return {"status": outcome.status}
        if outcome.kind in ("gone", "refused"):
            raise JobError(f"callback not delivered: {outcome.error}")
        delay = next_callback_delay(job.attempts, rand=self.rand(), retry_after=outcome.retry_after)
        if delay is None:
            raise JobError(f"callback not delivered after {job.attempts} attempts: {outcome.error}")
        raise RetryJob(outcome.error, after=delay)
