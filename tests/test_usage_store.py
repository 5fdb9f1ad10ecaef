"""Usage recording, reports, metrics and budgets over each store (SQLite and a real Redis)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.exceptions import BadRequest, BudgetExceeded
from gateway.jobs.queue import JobQueue
from gateway.metrics import Metrics
from gateway.security.crypto import SecretBox
from gateway.storage.base import Store
from gateway.storage.redis import RedisStore
from gateway.storage.sqlite import SQLiteStore
from gateway.usage import BUDGET_CALLBACK_JOB, BudgetIn, UsageRecord, UsageService
from gateway.usage.budgets import BUDGETS_TTL, Budget
from gateway.usage.records import price_text, price_units

pytestmark = pytest.mark.anyio

DEC_3 = datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp()
DEC_4 = datetime(2026, 12, 4, 9, tzinfo=UTC).timestamp()
NOV_30 = datetime(2026, 11, 30, 23, 59, tzinfo=UTC).timestamp()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str) -> AsyncIterator[Store]:
    clock = FakeClock(time.time())
    opened: Store
    if request.param == "sqlite":
        opened = await SQLiteStore.open(str(tmp_path / "usage.db"), clock=clock)
    else:
        opened = RedisStore.from_url(request.getfixturevalue("redis_url"), clock=clock, prefix=f"t-{uuid.uuid4().hex}:")
    try:
        yield opened
    finally:
        await opened.aclose()


def service(store: Store, clock: FakeClock, metrics: Metrics | None = None, url: str | None = None) -> UsageService:
    queue = JobQueue(store, clock, SecretBox([b"k" * 32]))
    return UsageService(
        store=store,
        clock=clock,
        queue=queue,
        metrics=metrics,
        callback_url=url,
        warning_share=0.8,
        dedup_window=3600,
        retention=None,
    )


def rec(
    key: str, *, t: float = DEC_3, tokens: tuple[int, int] = (10, 5), price: str = "0.0001", **fields: str
) -> UsageRecord:
    base = UsageRecord(
        key=key,
        workspace="default",
        endpoint="ep_1",
        app="support",
        plugin="webhook",
        user="u1",
        outcome="ok",
        time=t,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        total_tokens=sum(tokens),
        total_price=price,
        currency="USD",
        latency=0.5,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


async def test_the_same_answer_recorded_twice_counts_once(store: Store) -> None:
    clock = FakeClock(DEC_4)
    usage = service(store, clock)
    first = rec("msg-1")
    assert await usage.recorder.record(first) is True
    # A rerun (or another replica) recording the same Dify answer again: counted already.
    assert await usage.recorder.record(replace(first, time=DEC_4, user="u2")) is False
    assert await usage.recorder.record(rec("msg-2", tokens=(1, 2))) is True
    report = await usage.report.query(by="app")
    assert report["total"]["answers"] == 2
    assert report["total"]["total_tokens"] == 18
    assert report["rows"] == [
        {
            "workspace": "default",
            "app": "support",
            "answers": 2,
            "ok": 2,
            "error": 0,
            "cancelled": 0,
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "avg_latency_ms": 500,
            "cost": {"USD": "0.0002"},
        }
    ]


async def test_reports_by_each_key_and_date_range(store: Store) -> None:
    clock = FakeClock(DEC_4)
    usage = service(store, clock)
    records = [
        rec("a", app="support", endpoint="ep_1", user="u1", t=DEC_3),
        rec("b", app="support", endpoint="ep_2", user="u2", t=DEC_4, tokens=(100, 50), price="0.25"),
        rec("c", app="sales", endpoint="ep_2", user="u1", t=DEC_4, currency="EUR", price="1.5", outcome="error"),
        rec("d", app="sales", endpoint="ep_3", user="u\x1fodd", t=NOV_30, tokens=(7, 0)),
        rec("e", app="support", endpoint="ep_9", user="u9", t=DEC_4, workspace="team-b", tokens=(1000, 0)),
    ]
    for record in records:
        assert await usage.recorder.record(record)

    def pick(report: dict[str, object], by: str) -> dict[tuple[str, str], tuple[int, dict[str, str]]]:
        rows = report["rows"]
        assert isinstance(rows, list)
        return {(r["workspace"], r[by]): (r["total_tokens"], r["cost"]) for r in rows}

    december = await usage.report.query(by="app", workspace="default")  # default: this month to today
    assert december["from"] == "2026-12-01" and december["to"] == "2026-12-04"
    assert pick(december, "app") == {
        ("default", "sales"): (15, {"EUR": "1.5"}),
        ("default", "support"): (165, {"USD": "0.2501"}),
    }
    assert december["total"]["error"] == 1
    assert december["total"]["cost"] == {"EUR": "1.5", "USD": "0.2501"}  # currencies never mixed

    by_endpoint = await usage.report.query(by="endpoint", start=date(2026, 11, 1))
    assert pick(by_endpoint, "endpoint") == {
        ("default", "ep_1"): (15, {"USD": "0.0001"}),
        ("default", "ep_2"): (165, {"EUR": "1.5", "USD": "0.25"}),
        ("default", "ep_3"): (7, {"USD": "0.0001"}),
        ("team-b", "ep_9"): (1000, {"USD": "0.0001"}),
    }
    by_user = await usage.report.query(by="user", start=date(2026, 11, 30), end=date(2026, 12, 3), workspace="default")
    assert pick(by_user, "user") == {
        ("default", "u1"): (15, {"USD": "0.0001"}),
        ("default", "u\x1fodd"): (7, {"USD": "0.0001"}),
    }
    by_day = await usage.report.query(by="day", start=date(2026, 11, 30), workspace="default")
    assert pick(by_day, "day") == {
        ("default", "2026-11-30"): (7, {"USD": "0.0001"}),
        ("default", "2026-12-03"): (15, {"USD": "0.0001"}),
        ("default", "2026-12-04"): (165, {"EUR": "1.5", "USD": "0.25"}),
    }
    only_day = await usage.report.query(by="day", start=date(2026, 12, 4), end=date(2026, 12, 4))
    assert only_day["total"]["total_tokens"] == 1165
    assert await usage.report.workspaces() == ["default", "team-b"]


async def test_bad_report_parameters_are_400(store: Store) -> None:
    usage = service(store, FakeClock(DEC_4))
    with pytest.raises(BadRequest, match="by must be"):
        await usage.report.query(by="plugin")
    with pytest.raises(BadRequest, match="after"):
        await usage.report.query(start=date(2026, 12, 4), end=date(2026, 12, 1))
    with pytest.raises(BadRequest, match="366"):
        await usage.report.query(start=date(2025, 1, 1), end=date(2026, 12, 1))


def test_prices_are_exact_decimal_units() -> None:
    assert price_units("0.0001234") == 123_400
    assert price_text(price_units("0.0001234") * 3) == "0.0003702"
    assert price_text(0) == "0"
    for bad in (None, "", "abc", "-1", "NaN", "1e400"):
        assert price_units(bad) == 0


async def test_metrics_labels_are_bounded(store: Store) -> None:
    metrics = Metrics(label_limit=2)
    usage = service(store, FakeClock(DEC_4), metrics)
    for i in range(5):
        await usage.recorder.record(rec(f"m{i}", app=f"app{i}", endpoint=f"ep_{i}", t=DEC_4))
    text = metrics.render()
    tokens = [line for line in text.splitlines() if line.startswith("gateway_usage_tokens_total{")]
    apps = {line.split('app="')[1].split('"')[0] for line in tokens}
    assert apps == {"app0", "app1", "other"}
    assert metrics.usage_tokens.value("default", "other", "other", "prompt") == 30  # nothing lost, only merged
    assert metrics.usage_answers.value("default", "app0", "ep_0", "ok") == 1
    assert 'gateway_usage_cost_total{workspace="default",app="app1",endpoint="ep_1",currency="USD"} 0.0001' in text


async def test_budgets_refuse_at_the_limit_and_notify_once_per_month(store: Store) -> None:
    clock = FakeClock(DEC_3)
    usage = service(store, clock, url="https://hooks.example/budget")
    budget = await usage.budgets.set(BudgetIn(scope="app", target="support", tokens=100))
    again = await usage.budgets.set(BudgetIn(scope="app", target="support", tokens=100, warn_at=0.5))
    assert again.id == budget.id and [b.id for b in await usage.budgets.all()] == [budget.id]
    await usage.budgets.set(BudgetIn(scope="endpoint", target="ep_other", tokens=1))  # covers other answers only
    check = {"workspace": "default", "app": "support", "endpoint": "ep_1"}

    await usage.guard.check(**check)
    await usage.recorder.record(rec("1", tokens=(30, 0)))
    assert await store.job_list() == []  # 30 of 100: below the warning
    await usage.recorder.record(rec("2", tokens=(30, 0)))  # 60: past warn_at 0.5
    await usage.recorder.record(rec("3", tokens=(10, 0)))  # 70: still warned once
    await usage.guard.check(**check)
    await usage.recorder.record(rec("4", tokens=(40, 0)))  # 110: spent
    with pytest.raises(BudgetExceeded) as refused:
        await usage.guard.check(**check)
    assert refused.value.budget == budget.id and refused.value.period == "2026-12"
    assert "2027-01-01" in refused.value.message
    with pytest.raises(BudgetExceeded):
        await usage.guard.check(**check)
    await usage.recorder.record(rec("5", tokens=(1, 0)))
    jobs = await store.job_list()
    assert sorted(j.key or "" for j in jobs) == [
        f"budget-callback:{budget.id}:2026-12:budget.exceeded",
        f"budget-callback:{budget.id}:2026-12:budget.warning",
    ]
    assert all(j.kind == BUDGET_CALLBACK_JOB and "hooks.example" not in str(j.payload) for j in jobs)  # URL sealed
    await usage.guard.check(workspace="default", app="sales", endpoint="ep_1")  # another app: not covered

    clock.advance(31 * 24 * 3600)  # January: a new period
    await usage.guard.check(**check)
    assert await usage.budgets.delete(budget.id) and not await usage.budgets.delete(budget.id)


class CountedLists:
    """`store` with its `doc_list` calls counted (the budget listings)."""

    def __init__(self, store: Store) -> None:
        self.store, self.lists = store, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def doc_list(self, collection: str) -> object:
        self.lists += 1
        return await self.store.doc_list(collection)


async def test_answer_checks_list_the_budgets_at_most_once_a_second(store: Store) -> None:
    clock = FakeClock(DEC_3)
    counted = CountedLists(store)
    usage = service(counted, clock)  # type: ignore[arg-type]
    check = {"workspace": "default", "app": "support", "endpoint": "ep_1"}
    for n in range(5):
        await usage.guard.check(**check)
        await usage.recorder.record(rec(str(n)))  # its notice check lists them too
    assert counted.lists == 1
    clock.advance(BUDGETS_TTL)
    await usage.guard.check(**check)
    assert counted.lists == 2
    await usage.budgets.all()  # the admin listing always reads
    assert counted.lists == 3


async def test_a_budget_set_here_counts_at_once_and_elsewhere_within_the_ttl(store: Store) -> None:
    clock = FakeClock(DEC_3)
    here, elsewhere = service(store, clock), service(store, clock)  # e.g. the CLI, or another replica
    check = {"workspace": "default", "app": "support", "endpoint": "ep_1"}
    await here.recorder.record(rec("1", tokens=(30, 0)))
    await here.guard.check(**check)  # no budget yet (and that is remembered)

    budget = await here.budgets.set(BudgetIn(scope="app", target="support", tokens=30))
    with pytest.raises(BudgetExceeded):  # at once: this book changed it
        await here.guard.check(**check)
    await here.budgets.delete(budget.id)
    await here.guard.check(**check)  # deleted: at once too

    await elsewhere.budgets.set(BudgetIn(scope="app", target="support", tokens=30))
    clock.advance(BUDGETS_TTL / 2)
    await here.guard.check(**check)  # still the listing of half a second ago
    clock.advance(BUDGETS_TTL / 2)
    with pytest.raises(BudgetExceeded):  # within BUDGETS_TTL
        await here.guard.check(**check)
    await elsewhere.budgets.set(BudgetIn(scope="app", target="support", tokens=1000))  # raised elsewhere
    clock.advance(BUDGETS_TTL)
    await here.guard.check(**check)


async def test_a_listing_read_across_a_change_is_not_kept(store: Store) -> None:
    clock = FakeClock(DEC_3)
    await service(store, clock).recorder.record(rec("1", tokens=(30, 0)))
    usage = service(store, clock)
    check = {"workspace": "default", "app": "support", "endpoint": "ep_1"}
    listing = usage.budgets.all

    async def slow_listing(workspace: str | None = None) -> list[Budget]:
        listed = await listing(workspace)  # read before the budget below exists
        await usage.budgets.set(BudgetIn(scope="app", target="support", tokens=30))
        return listed

    usage.budgets.all = slow_listing  # type: ignore[method-assign]
    await usage.guard.check(**check)  # this check saw no budget...
    usage.budgets.all = listing  # type: ignore[method-assign]
    with pytest.raises(BudgetExceeded):  # ...but its listing was not remembered past the change
        await usage.guard.check(**check)


async def test_cost_budgets_count_their_currency_only(store: Store) -> None:
    usage = service(store, FakeClock(DEC_3))
    await usage.budgets.set(BudgetIn(scope="workspace", cost="0.5", currency="usd"))
    await usage.recorder.record(rec("1", price="2", currency="EUR"))
    await usage.guard.check(workspace="default", app="a", endpoint="e")
    await usage.recorder.record(rec("2", price="0.5"))
    with pytest.raises(BudgetExceeded, match="0.5 USD"):
        await usage.guard.check(workspace="default", app="a", endpoint="e")
    await usage.guard.check(workspace="team-b", app="a", endpoint="e")
