"""Budget checks: before an answer starts (refuse at the limit) and after it is counted (notices).

Both read one counter table, the workspace's month counter, never the usage records, and the
budgets through `BudgetBook.current()` (listed at most once a second per process).
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.clock import Clock
from gateway.exceptions import BudgetExceeded
from gateway.storage.base import Store
from gateway.usage.budgets import Budget, BudgetBook
from gateway.usage.counters import month_counter, month_of, next_month_start
from gateway.usage.notices import BudgetNotices
from gateway.usage.records import UsageRecord, price_text

__all__ = ["BudgetGuard"]


class BudgetGuard:
    """Refuses answers past a budget and sends its notices.

    Args:
        warning_share: the share of a limit (0..1) at which `budget.warning` goes out, unless the
            budget names its own `warn_at`.
    """

    def __init__(
        self, *, store: Store, clock: Clock, budgets: BudgetBook, notices: BudgetNotices, warning_share: float
    ) -> None:
        self._store = store
        self._clock = clock
        self._budgets = budgets
        self._notices = notices
        self._warning_share = warning_share

    async def _used(self, workspace: str, app: str, endpoint: str) -> tuple[str, list[tuple[Budget, int]]]:
        budgets = [b for b in await self._budgets.current() if b.applies(workspace, app, endpoint)]
        period = month_of(self._clock.time())
        if not budgets:
            return period, []
        used = await self._store.counters_get(month_counter(workspace, period))
        return period, [(budget, used.get(budget.field, 0)) for budget in budgets]

    async def check(self, *, workspace: str, app: str, endpoint: str) -> None:
        """Raise `BudgetExceeded` when a budget that covers this answer is spent."""
        period, used = await self._used(workspace, app, endpoint)
        for budget, spent in used:
            if spent >= budget.limit:
                await self._notices.send("budget.exceeded", budget, period, spent)
                raise _exceeded(budget, period, spent, next_month_start(self._clock.time()))

    async def counted(self, record: UsageRecord) -> None:
        """After `record` was counted: the warning and exceeded notices it crossed (once a period)."""
        period, used = await self._used(record.workspace, record.app, record.endpoint)
        for budget, spent in used:
            if spent >= budget.limit:
                await self._notices.send("budget.exceeded", budget, period, spent)
            elif spent >= budget.limit * (budget.warn_at or self._warning_share):
                await self._notices.send("budget.warning", budget, period, spent)


def _exceeded(budget: Budget, period: str, spent: int, resets_at: float) -> BudgetExceeded:
    if budget.tokens is not None:
        amount = f"{budget.tokens} tokens"
    else:
        amount = f"{price_text(budget.limit)} {budget.metric[5:]}"
    resets = datetime.fromtimestamp(resets_at, tz=UTC).date().isoformat()
    return BudgetExceeded(
        f"the monthly budget of {amount} for {budget.label} is spent; answers resume on {resets}",
        budget=budget.id,
        scope=budget.label,
        period=period,
        resets_at=resets_at,
    )
