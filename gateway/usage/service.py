"""`UsageService`: the usage parts of one gateway, built once (gateway/host/runtime.py)."""

from __future__ import annotations

from gateway.clock import Clock
from gateway.jobs.queue import JobQueue
from gateway.metrics import Metrics
from gateway.storage.base import Store
from gateway.usage.budgets import BudgetBook
from gateway.usage.guard import BudgetGuard
from gateway.usage.meter import AnswerMeter
from gateway.usage.notices import BudgetNotices
from gateway.usage.recorder import UsageRecorder
from gateway.usage.report import UsageReport

__all__ = ["UsageService"]


class UsageService:
    """Recording, reports and budgets over one store.

    Args:
        callback_url: where `budget.warning` / `budget.exceeded` go (None: they are only logged).
        warning_share: the default share of a budget that sends `budget.warning`.
        dedup_window: seconds an answer's usage key is remembered against double counting.
        retention: seconds usage counters are kept (None: for ever).
        recording: False turns recording and budget checks off (the answers go on unmetered).
    """

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        queue: JobQueue,
        metrics: Metrics | None,
        callback_url: str | None,
        warning_share: float,
        dedup_window: float,
        retention: float | None,
        recording: bool = True,
    ) -> None:
        self._clock = clock
        self.recording = recording
        self.budgets = BudgetBook(store, clock)
        self.report = UsageReport(store, clock)
        notices = BudgetNotices(store=store, queue=queue, clock=clock, url=callback_url)
        self.guard = BudgetGuard(
            store=store, clock=clock, budgets=self.budgets, notices=notices, warning_share=warning_share
        )
        self.recorder = UsageRecorder(
            store=store, metrics=metrics, guard=self.guard, dedup_window=dedup_window, retention=retention
        )

    def meter(self, *, workspace: str, endpoint_id: str, plugin: str) -> AnswerMeter | None:
        """The meter of one endpoint's answers (None when recording is off)."""
        if not self.recording:
            return None
        return AnswerMeter(
            recorder=self.recorder,
            guard=self.guard,
            clock=self._clock,
            workspace=workspace,
            endpoint=endpoint_id,
            plugin=plugin,
        )
