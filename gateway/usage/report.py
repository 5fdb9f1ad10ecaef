"""Usage reports: totals per app, endpoint, user or day over a range of UTC days, from the day counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from gateway.clock import Clock
from gateway.exceptions import BadRequest
from gateway.storage.base import Store
from gateway.usage.counters import BY, WORKSPACES, day_counter, day_of, split_field
from gateway.usage.records import price_text

__all__ = ["MAX_DAYS", "By", "UsageReport", "UsageRow", "parse_day"]

By = Literal["app", "endpoint", "user", "day"]
MAX_DAYS = 366
_COUNTS = ("answers", "ok", "error", "cancelled", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms")


def parse_day(value: str | None, name: str) -> date | None:
    """A `YYYY-MM-DD` query value; BadRequest naming `name` when it is not one."""
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad(name)
    except ValueError:
        return _bad(name)


def _bad(name: str) -> date:
    raise BadRequest(f"{name} must be a date as YYYY-MM-DD")


@dataclass(slots=True)
class UsageRow:
    workspace: str
    key: str
    counts: dict[str, int] = field(default_factory=dict)
    cost: dict[str, int] = field(default_factory=dict)  # nano-units per currency

    def add(self, metric: str, amount: int) -> None:
        if metric.startswith("cost:"):
            self.cost[metric[5:]] = self.cost.get(metric[5:], 0) + amount
        elif metric in _COUNTS:
            self.counts[metric] = self.counts.get(metric, 0) + amount

    def merge(self, other: UsageRow) -> None:
        for metric, amount in other.counts.items():
            self.add(metric, amount)
        for currency, amount in other.cost.items():
            self.add("cost:" + currency, amount)

    def to_json(self, by: str | None) -> dict[str, Any]:
        answers = self.counts.get("answers", 0)
        out: dict[str, Any] = {"workspace": self.workspace} if by is not None else {}
        if by is not None:
            out[by] = self.key
        out.update({name: self.counts.get(name, 0) for name in _COUNTS if name != "latency_ms"})
        out["avg_latency_ms"] = round(self.counts.get("latency_ms", 0) / answers) if answers else 0
        out["cost"] = {currency: price_text(units) for currency, units in sorted(self.cost.items())}
        return out


class UsageReport:
    """Reads the day counters of `gateway.usage.counters`: one read per workspace and day."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def workspaces(self) -> list[str]:
        return sorted(await self._store.counters_get(WORKSPACES))

    async def query(
        self, *, by: str = "app", start: date | None = None, end: date | None = None, workspace: str | None = None
    ) -> dict[str, Any]:
        """Totals per `by` value (and workspace) from `start` to `end`, both included.

        Defaults: from the first day of this month to today. Raises BadRequest for an unknown
        `by`, a range that ends before it starts or spans more than `MAX_DAYS` days."""
        if by not in BY:
            raise BadRequest(f"by must be one of {', '.join(BY)}")
        today = day_of(self._clock.time())
        end = end or today
        start = start or end.replace(day=1)
        if start > end:
            raise BadRequest("from must not be after to")
        days = (end - start).days + 1
        if days > MAX_DAYS:
            raise BadRequest(f"a report covers at most {MAX_DAYS} days")
        names = [workspace] if workspace is not None else await self.workspaces()
        rows: dict[tuple[str, str], UsageRow] = {}
        total = UsageRow("", "")
        for name in names:
            for offset in range(days):
                day = start + timedelta(days=offset)
                for key, amount in (await self._store.counters_get(day_counter(name, day, by))).items():
                    value, metric = split_field(key)
                    label = day.isoformat() if by == "day" else value
                    rows.setdefault((name, label), UsageRow(name, label)).add(metric, amount)
        for row in rows.values():
            total.merge(row)
        ordered = sorted(rows.values(), key=lambda r: (r.workspace, r.key))
        return {
            "by": by,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "workspace": workspace,
            "rows": [row.to_json(by) for row in ordered],
            "total": total.to_json(None),
        }
