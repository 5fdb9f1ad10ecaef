"""`dify-gateway usage` and `dify-gateway budgets set|list|delete`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click
from pydantic import ValidationError

from gateway.admin.usecases import set_budget
from gateway.cli.common import emit, fail, iso_times, run, table
from gateway.exceptions import BadRequest
from gateway.host.runtime import Gateway
from gateway.usage.budgets import BudgetIn
from gateway.usage.counters import BY
from gateway.usage.report import parse_day

__all__ = ["budgets", "usage"]


def _cost(cost: dict[str, str]) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in cost.items()) or "0"


def _human_report(report: dict[str, Any]) -> str:
    by = report["by"]
    head = f"usage by {by}, {report['from']} to {report['to']}" + (
        f", workspace {report['workspace']}" if report["workspace"] else ""
    )
    rows = [
        (r["workspace"], r[by], r["answers"], r["error"], r["prompt_tokens"], r["completion_tokens"], r["total_tokens"])
        + (_cost(r["cost"]),)
        for r in report["rows"]
    ]
    t = report["total"]
    rows.append(
        (
            "",
            "total",
            t["answers"],
            t["error"],
            t["prompt_tokens"],
            t["completion_tokens"],
            t["total_tokens"],
            _cost(t["cost"]),
        )
    )
    headers = ["WORKSPACE", by.upper(), "ANSWERS", "ERRORS", "PROMPT", "COMPLETION", "TOTAL TOKENS", "COST"]
    return head + "\n" + table(rows, headers)


@click.command("usage")
@click.option("--by", type=click.Choice(BY), default="app", show_default=True, help="what to total by")
@click.option("--from", "start", default=None, help="first day (YYYY-MM-DD, UTC); default: this month's first")
@click.option("--to", "end", default=None, help="last day (YYYY-MM-DD, UTC), included; default: today")
@click.option("--workspace", default=None, help="only this workspace (default: all)")
@click.option("--json", "as_json", is_flag=True)
def usage(by: str, start: str | None, end: str | None, workspace: str | None, as_json: bool) -> None:
    """Tokens, answers and cost that Dify reported, totalled by app, endpoint, user or day."""
    try:
        first, last = parse_day(start, "--from"), parse_day(end, "--to")
    except BadRequest as exc:
        fail(exc.message)

    async def action(gw: Gateway) -> dict[str, Any]:
        if workspace is not None:
            await gw.workspaces.require(workspace)
        return await gw.usage.report.query(by=by, start=first, end=last, workspace=workspace)

    emit(run(action), as_json, _human_report)


@click.group("budgets")
def budgets() -> None:
    """Monthly token or cost limits per workspace, app or endpoint."""


@budgets.command("set")
@click.option("--workspace", default="default", show_default=True)
@click.option("--app", default=None, help="limit this app's answers")
@click.option("--endpoint", default=None, help="limit this endpoint's answers (its id)")
@click.option("--tokens", type=int, default=None, help="total tokens a month")
@click.option("--cost", default=None, help="cost a month, e.g. 25.50")
@click.option("--currency", default="USD", show_default=True)
@click.option("--warn-at", type=float, default=None, help="share of the limit that sends budget.warning (0..1)")
@click.option("--json", "as_json", is_flag=True)
def set_(
    workspace: str,
    app: str | None,
    endpoint: str | None,
    tokens: int | None,
    cost: str | None,
    currency: str,
    warn_at: float | None,
    as_json: bool,
) -> None:
    """Set (or replace) a budget: without --app or --endpoint it covers the whole workspace."""
    if app and endpoint:
        fail("give --app or --endpoint, not both")
    scope = "app" if app else "endpoint" if endpoint else "workspace"
    try:
        data = BudgetIn(
            workspace=workspace,
            scope=scope,
            target=app or endpoint or "",
            tokens=tokens,
            cost=Decimal(cost) if cost is not None else None,
            currency=currency,
            warn_at=warn_at,
        )
    except (ValidationError, ArithmeticError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else [{"loc": ("cost",), "msg": "not a number"}]
        fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'budget'}: {e['msg']}" for e in errors))

    async def action(gw: Gateway) -> dict[str, Any]:
        budget = await set_budget(data, workspaces=gw.workspaces, budgets=gw.usage.budgets)
        return iso_times(budget.public(), "created_at")

    emit(run(action), as_json, lambda b: f"budget {b['id']} set")


@budgets.command("list")
@click.option("--workspace", default=None, help="only this workspace")
@click.option("--json", "as_json", is_flag=True)
def list_(workspace: str | None, as_json: bool) -> None:
    """List budgets."""

    async def action(gw: Gateway) -> list[dict[str, Any]]:
        return [iso_times(b.public(), "created_at") for b in await gw.usage.budgets.all(workspace)]

    def human(rows: list[dict[str, Any]]) -> str:
        limits = [f"{b['tokens']} tokens" if "tokens" in b else f"{b['cost']} {b['currency']}" for b in rows]
        return table(
            (
                (b["id"], b["workspace"], b["scope"], b["target"] or "-", limit)
                for b, limit in zip(rows, limits, strict=True)
            ),
            ["ID", "WORKSPACE", "SCOPE", "TARGET", "LIMIT / MONTH"],
        )

    emit(run(action), as_json, human)


@budgets.command("delete")
@click.argument("budget_id")
def delete(budget_id: str) -> None:
    """Delete the budget BUDGET_ID."""

    async def action(gw: Gateway) -> bool:
        return await gw.usage.budgets.delete(budget_id)

    if not run(action):
        fail(f"no budget {budget_id}")
    click.echo(f"deleted {budget_id}")
