"""Monthly usage budgets: a token or cost limit per workspace, app or endpoint, stored as documents.

Setting a budget for the same (workspace, scope, target, metric) replaces it, so `budgets set`
is idempotent and each budget has a stable id.

The checks on the answer path read the budgets through `BudgetBook.current()`, which lists them
from the store at most once per `BUDGETS_TTL` second per process (two listings per answer were
6-8 % of the OpenAI facade's CPU, docs/performance.md). A budget set, raised or deleted through
the same book (the admin API, the console) counts at once; one set by the CLI or on another
replica within `BUDGETS_TTL`. The month's counters are never cached.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.clock import Clock
from gateway.records.cache import ReadCache
from gateway.storage.base import Store
from gateway.usage.counters import month_field
from gateway.usage.records import NANO, safe_currency

__all__ = ["BUDGETS", "BUDGETS_TTL", "Budget", "BudgetBook", "BudgetIn", "BudgetScope", "BudgetSpec", "budget_id"]

BUDGETS = "budgets"  # the document collection
BUDGETS_TTL = 1.0  # seconds the answer path's checks may use a listing of the budgets
BudgetScope = Literal["workspace", "app", "endpoint"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class BudgetSpec(BaseModel):
    """A limit, without its workspace (the admin API takes that from the caller): exactly one of
    `tokens` or `cost` (in `currency`) per month."""

    model_config = ConfigDict(extra="forbid")

    scope: BudgetScope
    target: str = Field("", description="the app name or endpoint id; empty for a workspace budget", max_length=128)
    tokens: int | None = Field(None, gt=0, le=10**15)
    cost: Decimal | None = Field(None, gt=0, le=10**9, decimal_places=9)
    currency: str = Field("USD", pattern=r"^[A-Za-z]{1,10}$")
    warn_at: float | None = Field(None, gt=0, lt=1, description="share of the limit that sends budget.warning")

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if (self.tokens is None) == (self.cost is None):
            raise ValueError("give exactly one of tokens or cost")
        if self.scope == "workspace" and self.target:
            raise ValueError("a workspace budget has no target")
        if self.scope != "workspace" and not self.target:
            raise ValueError(f"an {self.scope} budget needs a target (the {self.scope}'s name or id)")
        return self


class BudgetIn(BudgetSpec):
    """A budget to set in `workspace`."""

    workspace: str = Field("default", pattern=_NAME)


class Budget(BudgetIn):
    id: str
    created_at: float

    @property
    def metric(self) -> str:
        return "total_tokens" if self.tokens is not None else "cost:" + safe_currency(self.currency)

    @property
    def limit(self) -> int:
        """The limit in counter units: tokens, or nano-units of the currency."""
        return self.tokens if self.tokens is not None else int((self.cost or Decimal(0)) * NANO)

    @property
    def field(self) -> str:
        """Its field in the month counter (`gateway.usage.counters`)."""
        return month_field(self.scope, self.target, self.metric)

    @property
    def label(self) -> str:
        return "workspace" if self.scope == "workspace" else f"{self.scope} {self.target!r}"

    def applies(self, workspace: str, app: str, endpoint: str) -> bool:
        if self.workspace != workspace:
            return False
        return self.scope == "workspace" or self.target == (app if self.scope == "app" else endpoint)

    def public(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        if self.tokens is not None:
            data.pop("currency", None)
        return data


def budget_id(data: BudgetIn) -> str:
    metric = "tokens" if data.tokens is not None else "cost:" + safe_currency(data.currency)
    digest = hashlib.sha256(f"{data.workspace}\x1f{data.scope}\x1f{data.target}\x1f{metric}".encode()).hexdigest()
    return "bud_" + digest[:16]


class BudgetBook:
    """The budgets in the store."""

    def __init__(self, store: Store, clock: Clock, *, ttl: float = BUDGETS_TTL) -> None:
        self._store = store
        self._clock = clock
        # The one listing of every budget (key None) for the answer path's checks.
        self._listed: ReadCache[None, list[Budget]] = ReadCache(clock, ttl=ttl, size=1)

    async def set(self, data: BudgetIn) -> Budget:
        """Create the budget, or replace the one with the same workspace, scope, target and metric."""
        budget_key = budget_id(data)
        known = await self.get(budget_key)
        created_at = known.created_at if known is not None else self._clock.time()
        budget = Budget(**data.model_dump(), id=budget_key, created_at=created_at)
        await self._store.doc_put(BUDGETS, budget.id, budget.model_dump(mode="json"))
        self._listed.clear()
        return budget

    async def get(self, budget_key: str) -> Budget | None:
        doc = await self._store.doc_get(BUDGETS, budget_key)
        return None if doc is None else Budget.model_validate(doc)

    async def all(self, workspace: str | None = None) -> list[Budget]:
        budgets = [Budget.model_validate(doc) for doc in await self._store.doc_list(BUDGETS)]
        return [b for b in budgets if workspace is None or b.workspace == workspace]

    async def current(self) -> list[Budget]:
        """Every budget, as listed at most `ttl` seconds ago (or since this book last changed one).
        For the checks on the answer path (concurrent checks share one read); `all()` always reads
        the store."""
        return await self._listed.get(None, self.all)

    async def delete(self, budget_key: str) -> bool:
        try:
            return await self._store.doc_delete(BUDGETS, budget_key)
        finally:
            self._listed.clear()

    async def delete_workspace(self, workspace: str) -> int:
        """Delete every budget of `workspace` (it is being deleted); returns how many. A workspace
        made later under the same name starts without them."""
        budgets = await self.all(workspace)
        for budget in budgets:
            await self.delete(budget.id)
        return len(budgets)
