"""Admin API handlers for usage reports and budgets (routes in gateway/admin/api.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request

from gateway.exceptions import NotFound
from gateway.host.runtime import Gateway
from gateway.usage.budgets import BudgetIn
from gateway.usage.report import parse_day

__all__ = [
    "USAGE_QUERY",
    "BudgetIn",
    "BudgetList",
    "BudgetOut",
    "UsageOut",
    "delete_budget",
    "list_budgets",
    "set_budget",
    "usage_report",
]

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


async def usage_report(request: Request, gw: Gateway, _: None) -> Any:
    query = request.query_params
    return await gw.usage.report.query(
        by=query.get("by", "app"),
        start=parse_day(query.get("from"), "from"),
        end=parse_day(query.get("to"), "to"),
        workspace=query.get("workspace") or None,
    )


async def list_budgets(request: Request, gw: Gateway, _: None) -> Any:
    workspace = request.query_params.get("workspace") or None
    return {"budgets": [b.public() for b in await gw.usage.budgets.all(workspace)]}


async def set_budget(request: Request, gw: Gateway, body: BudgetIn) -> Any:
    return (await gw.usage.budgets.set(body)).public()


async def delete_budget(request: Request, gw: Gateway, _: None) -> Any:
    budget_id = request.path_params["id"]
    if not await gw.usage.budgets.delete(budget_id):
        raise NotFound("no such budget")
    return {"deleted": budget_id}
