"""The `Context` a plugin's handlers receive, with its permissions enforced."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import httpx

from gateway.clock import Clock
from gateway.delivery.callback_jobs import CALLBACK_JOB, CALLBACK_SECRETS
from gateway.delivery.callbacks import callback_payload
from gateway.delivery.retry import CALLBACK_SCHEDULE
from gateway.dify.bridge import Bridge
from gateway.exceptions import NotFound, PermissionDenied
from gateway.jobs.lease import JobLease
from gateway.jobs.plugin_job import PLUGIN_JOB, PluginJobPayload
from gateway.jobs.queue import JobQueue
from gateway.jobs.workers import JobWorkers, StartedJob
from gateway.plugin import EndpointInfo, HeldLock, JobStatus, Lease, Memory, Permission, Plugin
from gateway.plugin.settings import current_secret
from gateway.records.workspaces import DEFAULT_WORKSPACE
from gateway.security.ssrf import UrlPolicy, check_url_syntax, resolve_and_check
from gateway.storage.base import Store
from gateway.storage.lock import LeaseLock

__all__ = ["EndpointCallbacks", "EndpointStorage", "PluginContext", "PluginJobs"]


class EndpointStorage:
    """Key-value storage and locks under the endpoint's own prefix: plugins can't see each other's keys."""

    def __init__(self, store: Store, endpoint_id: str, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self.prefix = f"kv:{endpoint_id}:"
        self._lock_prefix = f"lock:{endpoint_id}:"

    async def get(self, key: str) -> str | None:
        return await self._store.kv_get(self.prefix + key)

    async def set(self, key: str, value: str, *, ttl: float | None = None, fence: Lease | None = None) -> None:
        if isinstance(fence, JobLease):  # a run's record: refused (LeaseLost) once another run took over
            await fence.record(self.prefix + key, value, ttl=ttl)
        else:  # no fence, or the always-held one of a job run outside the workers
            await self._store.kv_set(self.prefix + key, value, ttl=ttl)

    async def set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool:
        return await self._store.kv_set_if_absent(self.prefix + key, value, ttl=ttl)

    async def delete(self, key: str) -> bool:
        return await self._store.kv_delete(self.prefix + key)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        return await self._store.kv_incr(self.prefix + key, amount, ttl=ttl)

    @contextlib.asynccontextmanager
    async def lock(self, name: str, ttl: float = 30.0, *, wait: float = 10.0) -> AsyncIterator[HeldLock]:
        if ttl <= 0 or wait < 0:
            raise ValueError("a lock needs a positive ttl and a wait of 0 or more")
        # Apart from the plugin's keys: `delete` or `set` on a key can't break someone's lock.
        lock = LeaseLock(self._store, self._lock_prefix + name, ttl=ttl)
        async with lock.held(self._clock, wait=wait):
            yield lock


class PluginJobs:
    """The plugin's own job handlers for one endpoint."""

    # A job started to be watched is enqueued due this far ahead, so pollers leave it to the
    # starting process; if that process dies first, any worker picks it up after this delay.
    START_HOLD = 5.0

    def __init__(self, queue: JobQueue, workers: JobWorkers, store: Store, plugin: Plugin, endpoint_id: str) -> None:
        self._queue = queue
        self._workers = workers
        self._store = store
        self._plugin = plugin
        self._endpoint_id = endpoint_id

    def _check(self, name: str) -> None:
        if name not in self._plugin.jobs:
            raise NotFound(f"plugin {self._plugin.name!r} has no job handler {name!r}")

    def _secrets(self, name: str) -> frozenset[str]:
        return self._plugin.job_secrets.get(name, frozenset())

    async def enqueue(
        self, name: str, payload: dict[str, Any], *, key: str | None = None, delay: float = 0.0, max_attempts: int = 8
    ) -> str:
        self._check(name)
        job, _ = await self._queue.enqueue_plugin_job(
            self._endpoint_id,
            name,
            payload,
            key=key,
            delay=delay,
            max_attempts=max_attempts,
            sealed=self._secrets(name),
        )
        return job.id

    async def start(
        self, name: str, payload: dict[str, Any], *, key: str | None = None, max_attempts: int = 8
    ) -> tuple[StartedJob, bool]:
        self._check(name)
        job, created = await self._queue.enqueue_plugin_job(
            self._endpoint_id,
            name,
            payload,
            key=key,
            delay=self.START_HOLD,
            max_attempts=max_attempts,
            sealed=self._secrets(name),
        )
        return await self._workers.start(job.id), created

    async def get(self, job_id: str) -> JobStatus | None:
        job = await self._store.job_get(job_id)
        if job is None or job.endpoint_id != self._endpoint_id or job.kind != PLUGIN_JOB:
            return None
        return JobStatus(
            id=job.id,
            name=PluginJobPayload.of(job).handler,
            state=job.state,
            attempts=job.attempts,
            result=job.result,
            error=job.last_error,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class EndpointCallbacks:
    """Signed callbacks of one endpoint: checked against SSRF rules, then delivered by a durable job."""

    def __init__(self, queue: JobQueue, policy: UrlPolicy, clock: Clock, endpoint_id: str) -> None:
        self._queue = queue
        self._policy = policy
        self._clock = clock
        self._endpoint_id = endpoint_id

    async def check(self, url: str) -> None:
        parsed = check_url_syntax(url, self._policy)
        await resolve_and_check(parsed.host, parsed.port, self._policy)

    async def send(
        self, url: str, event_type: str, data: Mapping[str, Any], *, msg_id: str, secret_setting: str = "secret"
    ) -> str:
        check_url_syntax(url, self._policy)  # addresses are checked again at every attempt
        body = callback_payload(event_type, data, timestamp=self._clock.time())
        job = await self._queue.enqueue(
            CALLBACK_JOB,
            {"url": url, "body": body.decode(), "msg_id": msg_id, "setting": secret_setting},
            key=f"callback:{self._endpoint_id}:{msg_id}",
            endpoint_id=self._endpoint_id,
            max_attempts=len(CALLBACK_SCHEDULE) + 1,
            sealed=CALLBACK_SECRETS,
        )
        return job.id


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
        workers: JobWorkers,
        http: httpx.AsyncClient,
        clock: Clock,
        apps: Bridge,
        callback_policy: UrlPolicy,
        secrets: Callable[[str], tuple[str, ...]] | None = None,
        workspace: str = DEFAULT_WORKSPACE,
        aiohttp_connector: Callable[[], aiohttp.BaseConnector] | None = None,
    ) -> None:
        self._plugin = plugin
        self._aiohttp_connector = aiohttp_connector  # the upstream guard's, for a guarded endpoint
        self.workspace = workspace  # the endpoint's (what is kept per tenant, e.g. a Dify package's storage)
        self._secrets_of = secrets  # a secret setting's values during a rotation (`secrets`)
        self._endpoint = endpoint
        self._settings = settings
        self._http = http
        self._clock = clock
        self._apps = apps
        # Built once: a context serves every call of its endpoint while it is current
        # (ContextFactory.for_request), and none of these parts holds per-call state.
        self._storage = EndpointStorage(store, endpoint.id, clock)
        self._jobs = PluginJobs(queue, workers, store, plugin, endpoint.id)
        self._callbacks = EndpointCallbacks(queue, callback_policy, clock, endpoint.id)
        self._memory = Memory(clock)  # lives as long as this context: a changed endpoint starts anew
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
    def apps(self) -> Bridge:
        self._require(Permission.APPS)
        return self._apps

    @property
    def storage(self) -> EndpointStorage:
        self._require(Permission.STORAGE)
        return self._storage

    @property
    def jobs(self) -> PluginJobs:
        self._require(Permission.JOBS)
        return self._jobs

    @property
    def http(self) -> httpx.AsyncClient:
        self._require(Permission.HTTP)
        return self._http

    def aiohttp_connector(self) -> aiohttp.BaseConnector:
        self._require(Permission.HTTP)
        return self._aiohttp_connector() if self._aiohttp_connector is not None else aiohttp.TCPConnector()

    @property
    def callbacks(self) -> EndpointCallbacks:
        self._require(Permission.HTTP)
        return self._callbacks

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        return self._logger

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def memory(self) -> Memory:
        return self._memory

    def secrets(self, setting: str) -> tuple[str, ...]:
        if self._secrets_of is not None:
            return self._secrets_of(setting)
        return current_secret(self._settings, setting)
