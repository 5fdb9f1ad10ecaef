"""Admin API schemas of usage reports and budgets (the routes are in gateway/admin/api.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from gateway.usage.budgets import BudgetIn

__all__ = ["USAGE_QUERY", "BudgetList", "BudgetOut", "UsageOut"]

USAGE_QUERY = ("by", "from", "to", "workspace")


class UsageOut(BaseModel):
    by: str
    from_: str = Field(alias="from")
    to: str
    workspace: str | None
    rows: list[dict[str, Any]]
    total: dict[str, Any]


class BudgetOut(BudgetIn):
    id: str
    created_at: float


class BudgetList(BaseModel):
    budgets: list[BudgetOut]
