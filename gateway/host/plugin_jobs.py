"""Running plugin jobs: the job handler the workers call for jobs of kind `plugin`.

A plugin enqueues work with `ctx.jobs.enqueue(name, data, key=...)` (gateway/host/context.py); a
worker claims the job and this handler finds the endpoint, builds the plugin's context and calls the
plugin's job handler `name` with a `JobInfo`.
"""

from __future__ import annotations

from typing import Any

from gateway.exceptions import Overloaded
from gateway.host.context_factory import ContextFactory
from gateway.jobs.lease import JobLease
from gateway.jobs.plugin_job import PluginJobPayload
from gateway.jobs.workers import Emit
from gateway.plugin import JobError, JobInfo, RetryJob
from gateway.records.endpoints import EndpointService
from gateway.security.crypto import SecretBox
from gateway.security.sealed import unseal
from gateway.storage.base import Job

__all__ = ["PluginJobRunner"]


class PluginJobRunner:
    """The handler of `plugin` jobs: runs the plugin's job handler while its endpoint exists and is enabled."""

    def __init__(self, *, endpoints: EndpointService, contexts: ContextFactory, box: SecretBox) -> None:
        self._endpoints = endpoints
        self._contexts = contexts
        self._box = box

    async def __call__(self, job: Job, emit: Emit, lease: JobLease) -> dict[str, Any] | None:
        record, plugin = await self._endpoints.of_job(job.endpoint_id, enabled=True)
        payload = PluginJobPayload.of(job)
        handler = plugin.jobs.get(payload.handler)
        if handler is None:
            raise JobError(f"plugin {record.plugin!r} has no job handler {payload.handler!r}")
        ctx = await self._contexts.for_request(record, plugin)  # shared while the records are unchanged
        data = unseal(self._box, job.id, payload.data, plugin.job_secrets.get(payload.handler, ()))
        info = JobInfo(job.id, payload.handler, data, job.attempts, payload.key, emit, lease)
        try:
            result = await handler(info, ctx)
        except Overloaded as exc:  # this process is full: run the job again later, never fail it
            raise RetryJob(exc.message, after=exc.retry_after) from None
        return result if isinstance(result, dict) else None
