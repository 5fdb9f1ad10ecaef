"""Where usage is counted: counter tables per workspace and UTC day (reports) and month (budgets).

    usage:workspaces                       field <workspace>             -> answers
    usage:<ws>:day:<YYYY-MM-DD>:<by>       field <value>␟<metric>         (by: app, endpoint, user, day)
    usage:<ws>:month:<YYYY-MM>             field <scope>␟<target>␟<metric> (scope: workspace, app, endpoint)

Metrics: answers, ok, error, cancelled, prompt_tokens, completion_tokens, total_tokens,
latency_ms, and cost:<CURRENCY> in nano-units. A value is split from its metric at the LAST
separator, so any value (a user id with a ␟ in it) reads back whole.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from gateway.usage.records import UsageRecord, safe_currency

__all__ = [
    "BY",
    "SEP",
    "WORKSPACES",
    "day_counter",
    "day_of",
    "increments",
    "month_counter",
    "month_field",
    "month_of",
    "next_month_start",
    "split_field",
]

SEP = "\x1f"
BY = ("app", "endpoint", "user", "day")
WORKSPACES = "usage:workspaces"


def day_of(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, tz=UTC).date()


def month_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m")


def next_month_start(timestamp: float) -> float:
    """When the month after the one of `timestamp` begins (UTC), in seconds since the epoch."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def day_counter(workspace: str, day: date, by: str) -> str:
    return f"usage:{workspace}:day:{day.isoformat()}:{by}"


def month_counter(workspace: str, month: str) -> str:
    return f"usage:{workspace}:month:{month}"


def month_field(scope: str, target: str, metric: str) -> str:
    return f"{scope}{SEP}{target}{SEP}{metric}"


def split_field(name: str) -> tuple[str, str]:
    """(value, metric) of a day counter's field."""
    value, _, metric = name.rpartition(SEP)
    return value, metric


def _metrics(record: UsageRecord) -> dict[str, int]:
    values = {
        "answers": 1,
        record.outcome: 1,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": record.total_tokens,
        "latency_ms": round(record.latency * 1000),
    }
    if record.price_units:
        values["cost:" + safe_currency(record.currency)] = record.price_units
    return {metric: amount for metric, amount in values.items() if amount}


def increments(record: UsageRecord) -> list[tuple[str, str, int]]:
    """Every (counter, field, amount) one record adds: a few dozen HINCRBYs, no scan ever."""
    metrics = _metrics(record)
    day = day_of(record.time)
    values = {"app": record.app, "endpoint": record.endpoint, "user": record.user, "day": ""}
    out = [(WORKSPACES, record.workspace, 1)]
    for by, value in values.items():
        counter = day_counter(record.workspace, day, by)
        out += [(counter, f"{value}{SEP}{metric}", amount) for metric, amount in metrics.items()]
    month = month_counter(record.workspace, month_of(record.time))
    limited = {
        metric: amount for metric, amount in metrics.items() if metric == "total_tokens" or metric[:5] == "cost:"
    }
    for scope, target in (("workspace", ""), ("app", record.app), ("endpoint", record.endpoint)):
        out += [(month, month_field(scope, target, metric), amount) for metric, amount in limited.items()]
    return out
