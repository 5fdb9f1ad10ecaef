"""`budget.warning` and `budget.exceeded`: signed callbacks, sent once per budget and month.

They are Standard Webhooks deliveries like every callback of the gateway (gateway/delivery/
callbacks.py): a durable job makes the attempts on the callback schedule, signed with the
`whsec_` secret GATEWAY_BUDGET_CALLBACK_SECRET, to GATEWAY_BUDGET_CALLBACK_URL.

Once per period: the job's key makes concurrent senders (replicas) share one delivery, and a
marker set with `kv_set_if_absent` after it keeps a later answer of the month from sending again
once the job is purged. A crash between the two only repeats the enqueue, which the key absorbs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, Literal

from pydantic import SecretStr

from gateway.clock import Clock
from gateway.delivery.callback_jobs import CALLBACK_SECRETS, settle
from gateway.delivery.callbacks import CallbackSender, callback_payload
from gateway.delivery.retry import CALLBACK_SCHEDULE
from gateway.exceptions import JobError
from gateway.jobs.lease import JobLease
from gateway.jobs.queue import JobQueue
from gateway.jobs.workers import Emit
from gateway.security.crypto import SecretBox
from gateway.security.sealed import unseal
from gateway.security.signatures import parse_webhook_secret
from gateway.storage.base import Job, Store
from gateway.usage.budgets import Budget
from gateway.usage.records import price_text

__all__ = ["BUDGET_CALLBACK_JOB", "BudgetCallbackDelivery", "BudgetNotices", "NoticeKind"]

logger = logging.getLogger(__name__)

BUDGET_CALLBACK_JOB = "budget_callback"
NoticeKind = Literal["budget.warning", "budget.exceeded"]
_MARKER_TTL = 40 * 24 * 3600.0  # longer than any month


class BudgetNotices:
    """Queues the budget callbacks; without a configured URL it only logs."""

    def __init__(self, *, store: Store, queue: JobQueue, clock: Clock, url: str | None) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._url = url

    async def send(self, kind: NoticeKind, budget: Budget, period: str, used: int) -> None:
        marker = f"budget-notice:{budget.id}:{period}:{kind}"
        if await self._store.kv_get(marker) is not None:
            return
        if self._url is None:
            if await self._store.kv_set_if_absent(marker, "logged", ttl=_MARKER_TTL):
                logger.warning("%s: the %s budget %s of %s (%s)", kind, budget.metric, budget.id, budget.label, period)
            return
        body = callback_payload(kind, _data(budget, period, used), timestamp=self._clock.time())
        msg_id = f"msg_{budget.id}_{period}_{kind.split('.')[1]}"
        await self._queue.enqueue(
            BUDGET_CALLBACK_JOB,
            {"url": self._url, "body": body.decode(), "msg_id": msg_id},
            key=f"budget-callback:{budget.id}:{period}:{kind}",
            max_attempts=len(CALLBACK_SCHEDULE) + 1,
            sealed=CALLBACK_SECRETS,
        )
        await self._store.kv_set_if_absent(marker, msg_id, ttl=_MARKER_TTL)


def _data(budget: Budget, period: str, used: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "budget": budget.id,
        "workspace": budget.workspace,
        "scope": budget.scope,
        "target": budget.target or None,
        "period": period,
    }
    if budget.tokens is not None:
        data.update(metric="tokens", limit=budget.tokens, used=used)
    else:
        data.update(metric="cost", currency=budget.metric[5:], limit=price_text(budget.limit), used=price_text(used))
    return data


class BudgetCallbackDelivery:
    """The handler of `BUDGET_CALLBACK_JOB` jobs: one signed attempt, then the callback schedule."""

    def __init__(
        self,
        *,
        box: SecretBox,
        sender: CallbackSender,
        secret: SecretStr | None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._box = box
        self._sender = sender
        self._secret = secret
        self.rand = rand

    async def __call__(self, job: Job, emit: Emit, lease: JobLease) -> dict[str, Any] | None:
        if self._secret is None:
            raise JobError("GATEWAY_BUDGET_CALLBACK_SECRET is not set: budget callbacks can't be signed")
        payload = unseal(self._box, job.id, job.payload, CALLBACK_SECRETS)
        key = parse_webhook_secret(self._secret.get_secret_value())
        outcome = await self._sender.send(
            payload["url"], payload["body"].encode(), msg_id=payload["msg_id"], secrets=[key]
        )
        return settle(outcome, job.attempts, self.rand())
