"""Signed callbacks as durable jobs: the job handler that makes one delivery attempt per run.

`EndpointCallbacks.send` (gateway/host/context.py) enqueues a job of kind `CALLBACK_JOB`; the workers
run it with `CallbackDelivery`, which signs with the endpoint's secret, sends once through
`CallbackSender`, and leaves when to try again to the fixed schedule (gateway/delivery/retry.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from gateway.delivery.callbacks import CallbackSender, Outcome
from gateway.delivery.retry import next_callback_delay
from gateway.exceptions import ConfigurationError
from gateway.jobs.lease import JobLease
from gateway.jobs.workers import Emit
from gateway.plugin import JobError, RetryJob
from gateway.records.endpoints import EndpointService
from gateway.security.crypto import SecretBox
from gateway.security.sealed import unseal
from gateway.security.signatures import parse_webhook_secret
from gateway.storage.base import Job

__all__ = ["CALLBACK_JOB", "CALLBACK_SECRETS", "CallbackDelivery", "callback_target", "settle"]

CALLBACK_JOB = "callback"
CALLBACK_SECRETS = frozenset({"url"})  # a callback URL may carry a token in its query


def callback_target(box: SecretBox, job: Job) -> str | None:
    """Where a callback job delivers, as `scheme://host[:port]` only: the path and query may hold a token."""
    if job.kind != CALLBACK_JOB:
        return None
    try:
        url = str(unseal(box, job.id, job.payload, CALLBACK_SECRETS).get("url", ""))
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}" if parts.hostname else None
    except (ConfigurationError, ValueError):
        return None


class CallbackDelivery:
    """The handler of `CALLBACK_JOB` jobs.

    Args:
        box: unseals the stored URL.
        endpoints: the endpoint whose signing secret (the setting the job names) signs the body.
        sender: makes the attempt.
        rand: jitter of the retry delays (0..1).
    """

    def __init__(
        self,
        *,
        box: SecretBox,
        endpoints: EndpointService,
        sender: CallbackSender,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._box = box
        self._endpoints = endpoints
        self._sender = sender
        self.rand = rand

    async def __call__(self, job: Job, emit: Emit, lease: JobLease) -> dict[str, Any] | None:
        """One attempt at a signed callback; the schedule decides when (or whether) to try again."""
        payload = unseal(self._box, job.id, job.payload, CALLBACK_SECRETS)
        keys = await self._signing_keys(job.endpoint_id, str(payload.get("setting", "secret")))
        outcome = await self._sender.send(
            payload["url"], payload["body"].encode(), msg_id=payload["msg_id"], secrets=keys
        )
        return settle(outcome, job.attempts, self.rand())

    async def _signing_keys(self, endpoint_id: str | None, setting: str) -> tuple[bytes, ...]:
        """The endpoint's signing keys. Its record is read as every job reads it (`of_job`):
        deliveries starting together (a batch the workers claimed at once) share one store read,
        and a secret rotated or removed in this process signs (or stops) every delivery that
        starts afterwards (another replica's change, within `RESOLVE_CACHE_SECONDS`)."""
        # A disabled endpoint still calls back: the work was accepted before it was turned off.
        record, plugin = await self._endpoints.of_job(endpoint_id, enabled=False)
        # Signed with the new secret and, during a rotation's grace, the old one too (Standard
        # Webhooks: several space-separated signatures), so receivers may switch at their pace.
        secrets = self._endpoints.secret_values(record, plugin, setting)
        if not secrets:
            raise JobError("the endpoint has no callback signing secret")
        return tuple(parse_webhook_secret(secret) for secret in secrets)


def settle(outcome: Outcome, attempts: int, rand: float) -> dict[str, Any]:
    """A callback job's end after attempt number `attempts`: its result when delivered, else
    `RetryJob` on the schedule (jittered by `rand`, 0..1) or `JobError` when no try is left."""
    if outcome.kind == "delivered":
        return {"status": outcome.status}
    if outcome.kind in ("gone", "refused"):
        raise JobError(f"callback not delivered: {outcome.error}")
    delay = next_callback_delay(attempts, rand=rand, retry_after=outcome.retry_after)
    if delay is None:
        raise JobError(f"callback not delivered after {attempts} attempts: {outcome.error}")
    raise RetryJob(outcome.error, after=delay)
