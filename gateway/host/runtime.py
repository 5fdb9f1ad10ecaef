"""The composition root: `open_gateway(settings)` builds the gateway's collaborators once, at start-up.

`Gateway` only holds them, for the HTTP app, the workers, the CLI and (through its narrow `host`)
services; it has no behaviour of its own but closing what it opened. The work lives with its
concepts: plugin contexts in gateway/host/context_factory.py, plugin jobs in gateway/host/plugin_jobs.py,
callback deliveries in gateway/delivery/callback_jobs.py, admin operations in gateway/admin/usecases.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.clock import Clock, SystemClock
from gateway.delivery.callback_jobs import CALLBACK_JOB, CallbackDelivery
from gateway.delivery.callbacks import CallbackSender
from gateway.dify.client import DEFAULT_TIMEOUT, DifyClient, make_http_client
from gateway.dify.conversations import ConversationLocks
from gateway.dify.models import DifyApp
from gateway.difyplugins.debug import (
    DebugConnections,
    DebugKeys,
    ForwardAuth,
    Forwarder,
    ListenerPolicy,
    PluginDebugging,
)
from gateway.difyplugins.installer import PluginInstaller
from gateway.difyplugins.installs import DifyPlugins
from gateway.difyplugins.runtime import DifyRuntime, ProcessPolicy, RuntimeConfig
from gateway.difyplugins.signature import load_trusted_keys
from gateway.host.context_factory import ContextFactory
from gateway.host.plugin_jobs import PluginJobRunner
from gateway.host.registry import PluginRegistry
from gateway.host.services import GatewayHost
from gateway.jobs.plugin_job import PLUGIN_JOB
from gateway.jobs.queue import JobQueue
from gateway.jobs.workers import JobHandlerFn, JobWorkers
from gateway.metrics import Metrics
from gateway.records.admintokens import AdminTokenService
from gateway.records.apps import AppService
from gateway.records.endpoints import EndpointService
from gateway.records.installations import InstallationRecords
from gateway.records.requestlog import RequestLog
from gateway.records.workspaces import WorkspaceService
from gateway.security.crypto import SecretBox
from gateway.security.ratelimit import RateLimiter
from gateway.security.ssrf import UrlPolicy
from gateway.security.tokens import EndpointTokens
from gateway.security.upstreams import UpstreamGuard, upstream_policy
from gateway.settings import Settings, outbound_environment
from gateway.storage import open_store
from gateway.storage.base import Store
from gateway.usage.notices import BUDGET_CALLBACK_JOB, BudgetCallbackDelivery
from gateway.usage.service import UsageService

__all__ = ["Gateway", "open_gateway"]


@dataclass
class Gateway:
    """Everything a running gateway (or a CLI command) works with. Build it with `open_gateway`."""

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
    workers: JobWorkers
    job_handlers: dict[str, JobHandlerFn]  # what the workers run, by job kind
    metrics: Metrics
    usage: UsageService
    contexts: ContextFactory
    host: GatewayHost  # what services see of the gateway
    workspaces: WorkspaceService
    admin_tokens: AdminTokenService  # workspace tokens for the admin API
    dify_plugins: DifyPlugins  # installed Dify plugin packages
    dify_runtime: DifyRuntime  # their processes (started with their first request)
    plugin_debug: PluginDebugging  # plugins connected for remote debugging (listening: see gateway/http/app.py)
    upstreams: UpstreamGuard  # checks and connects to the upstream URLs workspace tokens set
    _owns: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        """Hand locally started jobs back, then close what `open_gateway` opened (not what was passed in)."""
        await self.workers.cancel_local()
        await self.requests.aclose()
        for close in reversed(self._owns):
            await close()
        self._owns.clear()


async def open_gateway(
    settings: Settings,
    *,
    registry: PluginRegistry | None = None,
    clock: Clock | None = None,
    store: Store | None = None,
    http: httpx.AsyncClient | None = None,
    plugin_runtime: PluginInstaller | None = None,
    upstreams: UpstreamGuard | None = None,
) -> Gateway:
    """Connect the store and build the services. Collaborators passed in are not closed by `aclose`."""
    clock = clock or SystemClock()
    owns: list[Callable[[], Awaitable[None]]] = []
    if store is None:
        store = await open_store(settings.store, clock=clock, sqlite_inline_budget=settings.sqlite_inline_budget)
        owns.append(store.aclose)
    if http is None:
        http = make_http_client(
            use_aiohttp=settings.use_aiohttp,
            max_connections=settings.dify_connections,
            keepalive_expiry=settings.dify_keepalive_expiry,
        )
        owns.append(http.aclose)
    registry = registry if registry is not None else PluginRegistry.from_entry_points()
    box = SecretBox(settings.secret_keys)
    tokens = EndpointTokens(settings.secret_keys)
    queue = JobQueue(store, clock, box)
    metrics = Metrics(label_limit=settings.usage_metrics_labels)
    usage = UsageService(
        store=store,
        clock=clock,
        queue=queue,
        metrics=metrics,
        callback_url=settings.budget_callback_url,
        warning_share=settings.budget_warning_share,
        dedup_window=settings.usage_dedup_window,
        retention=settings.usage_retention or None,
        recording=settings.usage_recording,
    )
    policy = UrlPolicy(allow_http=settings.callback_allow_http, allowed_hosts=frozenset(settings.callback_allow_hosts))
    if upstreams is None:
        upstreams = UpstreamGuard(upstream_policy(settings.private_upstreams), timeout=DEFAULT_TIMEOUT)
        owns.append(upstreams.aclose)
    dify = DifyClient(
        http,
        clock=clock,
        breaker_threshold=settings.dify_breaker_failures,
        breaker_cool_down=settings.dify_breaker_cool_down,
        max_concurrent_answers=settings.max_concurrent_answers,
        answer_queue_timeout=settings.answer_queue_timeout,
        idle_timeout=settings.dify_idle_timeout,
        guarded_http=upstreams.http,
    )

    async def fetch_info(name: str, base_url: str, api_key: str, guarded: bool) -> dict[str, Any]:
        # The mode is what we are finding out; any valid one lets the client build the call.
        info = await dify.info(DifyApp(name, base_url, api_key, "chat", guarded=guarded))
        return dataclasses.asdict(info)

    async def fetch_parameters(name: str, base_url: str, api_key: str, guarded: bool) -> dict[str, Any]:
        return await dify.parameters(DifyApp(name, base_url, api_key, "chat", guarded=guarded))

    workspaces = WorkspaceService(store, clock)
    apps = AppService(store, box, clock, fetch_info, fetch_parameters, workspaces=workspaces, upstreams=upstreams)
    endpoints = EndpointService(
        store,
        registry,
        box,
        tokens,
        clock,
        public_url=settings.public_url,
        rotation_grace=settings.rotation_grace,
        workspaces=workspaces,
        upstreams=upstreams,
        apps=apps,
    )
    handlers: dict[str, JobHandlerFn] = {}
    workers = JobWorkers(
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
    )
    contexts = ContextFactory(
        apps=apps,
        endpoints=endpoints,
        dify=dify,
        store=store,
        # A crashed answer frees its conversation as soon as its job can be taken over.
        locks=ConversationLocks(store, clock, lease=settings.job_lease),
        queue=queue,
        workers=workers,
        http=http,
        clock=clock,
        callback_policy=policy,
        guarded_http=upstreams.http,
        usage=usage,
        guarded_aiohttp=upstreams.aiohttp_connector,
    )
    sender = CallbackSender(policy=policy, clock=clock)
    owns.append(sender.aclose)
    forward_auth = ForwardAuth(settings.secret_keys, clock)
    debug_connections = DebugConnections(
        store,
        clock,
        forwarder=Forwarder(http, forward_auth, timeout=settings.plugin_request_timeout + 10.0),
        address=settings.internal_url,
    )
    dify_runtime = DifyRuntime(
        RuntimeConfig(
            venv_dir=settings.plugin_venv_directory,
            python=settings.plugin_python,
            policy=ProcessPolicy(
                # The SDK's heartbeat comes several times within the timeout (10 s apart at most).
                heartbeat_interval=min(10.0, settings.plugin_heartbeat_timeout / 4),
                heartbeat_timeout=settings.plugin_heartbeat_timeout,
                request_timeout=settings.plugin_request_timeout,
                restart_max=settings.plugin_restart_max,
            ),
            env=outbound_environment(),
        ),
        registry=registry,
        store=store,
        clock=clock,
        records=InstallationRecords(store),
        remote=debug_connections,
    )
    owns.append(dify_runtime.aclose)  # plugin processes stop with the gateway
    await dify_runtime.load_installed()
    metrics.collectors.append(dify_runtime.metric_lines)
    dify_plugins = DifyPlugins(
        store,
        endpoints,
        clock,
        plugin_dir=settings.plugin_directory,
        keys=load_trusted_keys(settings.plugin_public_keys),
        allow_unsigned=settings.allow_unsigned_plugins,
        runtime=plugin_runtime or dify_runtime,
    )
    limiter = RateLimiter(store, clock)
    handlers[PLUGIN_JOB] = PluginJobRunner(endpoints=endpoints, contexts=contexts, box=box)
    handlers[CALLBACK_JOB] = CallbackDelivery(box=box, endpoints=endpoints, sender=sender)
    budget_secret = settings.budget_callback_secret
    handlers[BUDGET_CALLBACK_JOB] = BudgetCallbackDelivery(box=box, sender=sender, secret=budget_secret)
    return Gateway(
        settings=settings,
        clock=clock,
        store=store,
        registry=registry,
        http=http,
        box=box,
        tokens=tokens,
        apps=apps,
        endpoints=endpoints,
        requests=RequestLog(store, settings.request_log_size, clock),
        limiter=limiter,
        queue=queue,
        workers=workers,
        job_handlers=handlers,
        metrics=metrics,
        usage=usage,
        contexts=contexts,
        host=GatewayHost(
            extra=settings.extra, clock=clock, store=store, endpoints=endpoints, registry=registry, contexts=contexts
        ),
        dify_runtime=dify_runtime,
        workspaces=workspaces,
        admin_tokens=AdminTokenService(store, clock),
        dify_plugins=dify_plugins,
        plugin_debug=PluginDebugging(
            keys=DebugKeys(store, clock),
            connections=debug_connections,
            plugins=dify_plugins,
            runtime=dify_runtime,
            limiter=limiter,
            clock=clock,
            policy=ListenerPolicy(
                heartbeat_timeout=settings.plugin_heartbeat_timeout, attempts_per_minute=settings.plugin_debug_attempts
            ),
            auth=forward_auth,
        ),
        upstreams=upstreams,
        _owns=owns,
    )
