"""Recording usage exactly once: one atomic store write per answer, keyed by the Dify answer.

`counters_add_once` sets the marker `usage:rec:<key>` (holding the record, for as long as reruns
are possible) and adds every counter of the record in one step, so a record written twice (a
retried write, a rerun that reads the same answer, a second replica) counts once, and a crash
leaves either all of it or none.
"""

from __future__ import annotations

import logging

from gateway.metrics import Metrics
from gateway.storage.base import Store, json_dumps
from gateway.usage.counters import increments
from gateway.usage.guard import BudgetGuard
from gateway.usage.records import UsageRecord, price_text, safe_currency

__all__ = ["UsageRecorder"]

logger = logging.getLogger(__name__)


class UsageRecorder:
    """Counts records in the store and in the process's metrics, then lets the guard send notices.

    Args:
        dedup_window: seconds a record's key is remembered (a rerun within it never counts twice).
        retention: seconds the day and month counters are kept; None keeps them.
    """

    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics | None,
        guard: BudgetGuard | None,
        dedup_window: float,
        retention: float | None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._guard = guard
        self._dedup_window = dedup_window
        self._retention = retention

    async def record(self, record: UsageRecord) -> bool:
        """Count `record`; False when its key was counted already."""
        added = await self._store.counters_add_once(
            f"usage:rec:{record.key}",
            json_dumps(record.to_dict()),
            increments(record),
            marker_ttl=self._dedup_window,
            ttl=self._retention,
        )
        if not added:
            logger.info("usage of answer %s was counted already", record.key)
            return False
        if self._metrics is not None:
            self._metrics.count_usage(
                workspace=record.workspace,
                app=record.app,
                endpoint=record.endpoint,
                outcome=record.outcome,
                prompt_tokens=record.prompt_tokens,
                completion_tokens=record.completion_tokens,
                currency=safe_currency(record.currency),
                cost=float(price_text(record.price_units)),
            )
        if self._guard is not None:
            try:
                await self._guard.counted(record)
            except Exception as exc:  # counted already: the next answer counted sends what is due
                logger.warning("budget notices after answer %s failed: %s", record.key, exc)
        return True
