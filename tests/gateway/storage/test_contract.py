"""The storage contract: every backend must pass every test here (see `store` in conftest.py).

Job tests pass explicit `now` values and never sleep; only the key TTL tests sleep briefly,
because Redis enforces TTLs on its own (real) clock while SQLite uses the injected one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

import anyio
import pytest

from gateway.clock import FakeClock
from gateway.exceptions import LockBusy
from gateway.storage.base import Job, Store
from gateway.storage.lock import LeaseLock

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
SHORT_TTL = 0.2


async def pass_time(clock: FakeClock, seconds: float) -> None:
    """Let `seconds` pass for both backends: really (Redis) and on the injected clock (SQLite)."""
    await anyio.sleep(seconds)
    clock.advance(seconds)


async def gather(*calls: Any) -> list[Any]:
    """Run zero-argument coroutine functions concurrently; their results in order."""
    results: list[Any] = [None] * len(calls)

    async def run(i: int) -> None:
        results[i] = await calls[i]()

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(run, i)
    return results


def job(job_id: str, *, due_at: float = T0, key: str | None = None, created_at: float = 0.0, **extra: Any) -> Job:
    return Job(id=job_id, kind="test", payload={"n": job_id}, key=key, due_at=due_at, created_at=created_at, **extra)


# -- lifecycle ---------------------------------------------------------------------------------
async def test_ping(store: Store) -> None:
    await store.ping()


# -- documents ---------------------------------------------------------------------------------
async def test_doc_create_only_when_free_and_put_replaces(store: Store) -> None:
    assert await store.doc_get("apps", "a") is None
    assert await store.doc_create("apps", "a", {"name": "first", "n": [1, {"x": "é"}]}) is True
    assert await store.doc_create("apps", "a", {"name": "second"}) is False
    assert await store.doc_get("apps", "a") == {"name": "first", "n": [1, {"x": "é"}]}

    await store.doc_put("apps", "a", {"name": "replaced"})
    assert await store.doc_get("apps", "a") == {"name": "replaced"}
    await store.doc_put("apps", "b", {"name": "new"})  # put also creates
    assert await store.doc_get("apps", "b") == {"name": "new"}


async def test_doc_delete(store: Store) -> None:
    await store.doc_put("apps", "a", {"v": 1})
    assert await store.doc_delete("apps", "a") is True
    assert await store.doc_delete("apps", "a") is False
    assert await store.doc_get("apps", "a") is None


async def test_doc_list_ordered_by_key_per_collection(store: Store) -> None:
    for key in ["b", "c", "a"]:
        await store.doc_put("endpoints", key, {"key": key})
    await store.doc_put("apps", "z", {"key": "z"})
    assert [d["key"] for d in await store.doc_list("endpoints")] == ["a", "b", "c"]
    assert await store.doc_list("apps") == [{"key": "z"}]
    assert await store.doc_list("empty") == []


# -- key-value ---------------------------------------------------------------------------------
async def test_kv_set_get_delete(store: Store) -> None:
    assert await store.kv_get("k") is None
    await store.kv_set("k", "v1")
    await store.kv_set("k", "v2")
    assert await store.kv_get("k") == "v2"
    assert await store.kv_delete("k") is True
    assert await store.kv_delete("k") is False
    assert await store.kv_get("k") is None


async def test_kv_ttl_expiry(store: Store, clock: FakeClock) -> None:
    await store.kv_set("short", "1", ttl=SHORT_TTL)
    await store.kv_set("reset", "1", ttl=SHORT_TTL)
    await store.kv_set("reset", "2")  # a plain set drops the TTL
    await store.kv_set("forever", "1")
    assert await store.kv_set_if_absent("nx", "a", ttl=SHORT_TTL) is True
    assert await store.kv_get("short") == "1"

    await pass_time(clock, SHORT_TTL + 0.1)
    assert await store.kv_get("short") is None
    assert await store.kv_get("reset") == "2"
    assert await store.kv_get("forever") == "1"
    assert await store.kv_delete("short") is False  # expired counts as absent
    assert await store.kv_set_if_absent("nx", "b") is True  # expired counts as absent
    assert await store.kv_get("nx") == "b"


async def test_kv_set_if_absent_race_has_one_winner(store: Store) -> None:
    results = await gather(*[lambda i=i: store.kv_set_if_absent("lock", f"owner-{i}", ttl=30) for i in range(20)])
    assert results.count(True) == 1
    assert await store.kv_get("lock") == f"owner-{results.index(True)}"
    assert await store.kv_set_if_absent("lock", "late") is False


async def test_kv_delete_if_equals(store: Store) -> None:
    await store.kv_set("lock", "me")
    assert await store.kv_delete_if_equals("lock", "someone-else") is False
    assert await store.kv_get("lock") == "me"
    assert await store.kv_delete_if_equals("lock", "me") is True
    assert await store.kv_get("lock") is None
    assert await store.kv_delete_if_equals("lock", "me") is False


async def test_kv_expire_if_equals(store: Store, clock: FakeClock) -> None:
    await store.kv_set("renewed", "me", ttl=SHORT_TTL)
    await store.kv_set("shortened", "me")
    assert await store.kv_expire_if_equals("renewed", "other", 30) is False
    assert await store.kv_expire_if_equals("missing", "me", 30) is False
    assert await store.kv_expire_if_equals("renewed", "me", 30) is True
    assert await store.kv_expire_if_equals("shortened", "me", SHORT_TTL) is True

    await pass_time(clock, SHORT_TTL + 0.1)
    assert await store.kv_get("renewed") == "me"
    assert await store.kv_get("shortened") is None
    assert await store.kv_expire_if_equals("shortened", "me", 30) is False


async def test_kv_incr(store: Store) -> None:
    assert await store.kv_incr("n") == 1
    assert await store.kv_incr("n", 5) == 6
    assert await store.kv_incr("n", -2) == 4
    assert await store.kv_get("n") == "4"
    await store.kv_set("m", "10")
    assert await store.kv_incr("m") == 11
    await store.kv_set("text", "abc")
    with pytest.raises(ValueError, match="integer"):
        await store.kv_incr("text")
    assert await store.kv_get("text") == "abc"


async def test_kv_incr_is_atomic(store: Store) -> None:
    results = await gather(*[lambda: store.kv_incr("hits") for _ in range(50)])
    assert sorted(results) == list(range(1, 51))
    assert await store.kv_get("hits") == "50"


async def test_kv_incr_ttl_applies_on_creation_only(store: Store, clock: FakeClock) -> None:
    assert await store.kv_incr("window", ttl=SHORT_TTL) == 1
    assert await store.kv_incr("window", ttl=30) == 2  # does not push the expiry out
    await store.kv_set("plain", "0")
    assert await store.kv_incr("plain", ttl=SHORT_TTL) == 1  # existing key: TTL not added

    await pass_time(clock, SHORT_TTL + 0.1)
    assert await store.kv_get("window") is None
    assert await store.kv_get("plain") == "1"
    assert await store.kv_incr("window", ttl=30) == 1  # an expired counter starts again


async def test_counters_add_once_per_marker(store: Store) -> None:
    assert await store.counters_get("day") == {}
    adds = [("day", "a", 2), ("day", "b", 5), ("month", "a", 2), ("day", "a", 1)]
    assert await store.counters_add_once("rec:1", '{"n":1}', adds) is True
    assert await store.counters_add_once("rec:1", '{"n":1}', [("day", "a", 100)]) is False  # seen: no change
    assert await store.counters_add_once("rec:2", "{}", [("day", "b", -1), ("day", "c", 7)]) is True
    assert await store.counters_get("day") == {"a": 3, "b": 4, "c": 7}
    assert await store.counters_get("month") == {"a": 2}
    assert await store.kv_get("rec:1") == '{"n":1}'  # the marker is an ordinary key


async def test_counters_add_once_is_atomic(store: Store) -> None:
    # Fifty writers race on five markers: each marker's increments land exactly once.
    calls = [lambda i=i: store.counters_add_once(f"m:{i % 5}", "x", [("c", "n", 1)]) for i in range(50)]
    results = await gather(*calls)
    assert sum(results) == 5
    assert await store.counters_get("c") == {"n": 5}


async def test_counters_expire_with_their_table(store: Store, clock: FakeClock) -> None:
    assert await store.counters_add_once("m:1", "x", [("short", "a", 1)], marker_ttl=SHORT_TTL, ttl=SHORT_TTL)
    assert await store.counters_add_once("m:2", "x", [("short", "b", 1), ("kept", "a", 1)], ttl=None)
    await pass_time(clock, SHORT_TTL + 0.1)
    assert await store.counters_get("short") == {}
    assert await store.counters_get("kept") == {"a": 1}
    # The expired marker is free again, and the table starts over.
    assert await store.counters_add_once("m:1", "x", [("short", "a", 4)], ttl=30) is True
    assert await store.counters_get("short") == {"a": 4}


async def test_kv_delete_prefix(store: Store) -> None:
    for key in ["conv:a:1", "conv:a:2", "conv:a:2:x", "conv:ab", "conv:b", "other", "we*ird[1]:x", "we*ird[2]"]:
        await store.kv_set(key, "v")
    assert await store.kv_delete_prefix("conv:a:") == 3
    assert [await store.kv_get(k) for k in ["conv:a:1", "conv:a:2", "conv:a:2:x"]] == [None, None, None]
    assert await store.kv_get("conv:ab") == "v"
    assert await store.kv_get("conv:b") == "v"
    # Glob characters in the prefix are literal.
    assert await store.kv_delete_prefix("we*ird[1]") == 1
    assert await store.kv_get("we*ird[2]") == "v"
    assert await store.kv_delete_prefix("nothing-here") == 0


async def test_kv_delete_prefix_counts_many(store: Store) -> None:
    for i in range(1200):  # more than one SCAN / UNLINK batch
        await store.kv_set(f"bulk:{i}", "v")
    assert await store.kv_delete_prefix("bulk:") == 1200
    assert await store.kv_get("bulk:7") is None


# -- capped logs -------------------------------------------------------------------------------
async def test_log_capped_newest_first(store: Store) -> None:
    for i in range(5):
        await store.log_append("ep1", [{"i": i}], max_len=3)
    await store.log_append("ep2", [{"i": 100}], max_len=3)
    assert await store.log_list("ep1", 10) == [{"i": 4}, {"i": 3}, {"i": 2}]
    assert await store.log_list("ep1", 2) == [{"i": 4}, {"i": 3}]
    assert await store.log_list("ep1", 0) == []
    assert await store.log_list("ep2", 10) == [{"i": 100}]
    assert await store.log_list("missing", 10) == []


async def test_log_append_batch_keeps_order_and_cap(store: Store) -> None:
    await store.log_append("ep1", [{"i": i} for i in range(5)], max_len=4)
    assert await store.log_list("ep1", 10) == [{"i": 4}, {"i": 3}, {"i": 2}, {"i": 1}]
    await store.log_append("ep1", [], max_len=4)
    assert len(await store.log_list("ep1", 10)) == 4


async def test_log_delete(store: Store) -> None:
    await store.log_append("ep1", [{"i": 1}], max_len=10)
    await store.log_append("ep2", [{"i": 2}], max_len=10)
    await store.log_delete("ep1")
    assert await store.log_list("ep1", 10) == []
    assert await store.log_list("ep2", 10) == [{"i": 2}]
    await store.log_append("ep1", [{"i": 3}], max_len=10)
    assert await store.log_list("ep1", 10) == [{"i": 3}]


# -- jobs: enqueue and read ----------------------------------------------------------------------
async def test_job_enqueue_and_get_round_trip(store: Store, clock: FakeClock) -> None:
    original = Job(
        id="j1", kind="deliver", payload={"body": "é", "n": [1, 2.5]}, endpoint_id="ep", max_attempts=3,
        due_at=T0 + 0.123456, meta={"note": "x", "t": 1_700_000_000.654321},
    )  # fmt: skip
    stored, created = await store.job_enqueue(original)
    assert created is True
    assert stored.state == "queued"
    assert stored.created_at == stored.updated_at == clock.time()  # defaulted from the store's clock
    assert await store.job_get("j1") == stored
    assert await store.job_get("missing") is None


async def test_job_enqueue_idempotency_key_returns_existing(store: Store) -> None:
    first, created = await store.job_enqueue(job("j1", key="order-7"))
    assert created is True
    again, created = await store.job_enqueue(job("j2", key="order-7", due_at=T0 + 99))
    assert created is False
    assert again == first
    assert await store.job_get("j2") is None
    _, created = await store.job_enqueue(job("j3", key="order-8"))
    assert created is True


async def test_job_enqueue_same_id_twice_is_refused(store: Store) -> None:
    await store.job_enqueue(job("j1"))
    with pytest.raises(ValueError, match="already exists"):
        await store.job_enqueue(job("j1"))


async def test_job_values_keep_the_json_rules(store: Store) -> None:
    """What a job holds is JSON as the encoder writes it: text beyond ASCII kept as is, integers
    of any size kept exactly, NaN and infinities refused (nothing stored), at any depth."""
    big = 2**70
    payload = {
        "text": "é 日本 \u2028",
        "big": big,
        "list": [big, -0.0, True, None],
        # JSON inside JSON on the way (Redis hands a job's fields to its script as one JSON array):
        # quotes, backslashes, control characters and floats come back exactly.
        "quoted": 'say "hi" \\ "\\n" \\u0041',
        "control": "\x00\x01\n\t\x1f\x7f",
        "astral": "🚀 \U0001f600",
        "floats": [3.141592653589793, 5e-324, 1.7976931348623157e308, 0.1 + 0.2],
    }
    stored, _ = await store.job_enqueue(Job(id="j1", kind="test", payload=payload, key="ключ", due_at=T0))
    again = await store.job_get("j1")
    assert again == stored
    assert again is not None and again.key == "ключ"
    assert again.payload == payload
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError):
            await store.job_enqueue(Job(id="bad-payload", kind="test", payload={"x": [bad]}, due_at=T0))
        with pytest.raises(ValueError):
            await store.job_enqueue(job("bad-meta", meta={"x": bad}))
    assert [j.id for j in await store.job_list()] == ["j1"]


# -- jobs: concurrent enqueues (one transaction / one round trip per batch) ----------------------
async def settle(*calls: Any) -> list[Any]:
    """Like `gather`, but each result is the value or the exception its call raised."""

    async def caught(call: Any) -> Any:
        try:
            return await call()
        except Exception as exc:
            return exc

    return await gather(*(lambda call=call: caught(call) for call in calls))


async def test_job_concurrent_enqueues_each_get_their_own_result(store: Store) -> None:
    jobs = [job(f"j{i}", key=f"k{i}" if i % 2 else None, due_at=T0 + i) for i in range(40)]
    results = await gather(*(lambda j=j: store.job_enqueue(j) for j in jobs))
    for original, (stored, created) in zip(jobs, results, strict=True):
        assert created is True
        assert (stored.id, stored.key, stored.due_at, stored.payload) == (
            original.id, original.key, original.due_at, original.payload,
        )  # fmt: skip
        assert await store.job_get(original.id) == stored


async def test_job_concurrent_enqueues_with_one_key_store_one_job(store: Store) -> None:
    results = await gather(*(lambda i=i: store.job_enqueue(job(f"j{i}", key="event-1")) for i in range(20)))
    assert sum(created for _, created in results) == 1
    winner = next(stored for stored, created in results if created)
    assert all(stored == winner for stored, _ in results)
    assert [j.id for j in await store.job_list()] == [winner.id]


async def test_job_concurrent_enqueue_of_a_taken_id_fails_that_caller_only(store: Store) -> None:
    await store.job_enqueue(job("taken"))
    results = await settle(
        lambda: store.job_enqueue(job("a")),
        lambda: store.job_enqueue(job("taken")),
        lambda: store.job_enqueue(job("b", key="kb")),
        lambda: store.job_enqueue(job("b")),  # the same id twice at once: whichever comes second fails
    )
    assert results[0][1] is True
    assert isinstance(results[1], ValueError) and "already exists" in str(results[1])
    failed = [r for r in results[2:] if isinstance(r, ValueError)]
    stored = [r[0] for r in results[2:] if not isinstance(r, Exception) and r[1] is True]
    assert len(failed) == 1 and "already exists" in str(failed[0]) and len(stored) == 1
    assert {j.id for j in await store.job_list()} == {"taken", "a", "b"}
    assert await store.job_get("b") == stored[0]


async def test_job_concurrent_completes_each_get_their_own_outcome(store: Store) -> None:
    for i in range(6):
        await store.job_enqueue(job(f"j{i}"))
    claimed = [await store.job_claim("w", T0, 30) for _ in range(6)]
    assert all(c is not None for c in claimed)
    calls: list[Callable[[], Awaitable[bool]]] = [
        functools.partial(store.job_complete, c.id, "w", {"n": c.id}, attempt=c.attempts) for c in claimed if c
    ]
    calls.append(functools.partial(store.job_complete, "j0", "someone-else", {"n": "x"}))  # not the owner: refused
    outcomes = await gather(*calls)
    assert outcomes == [True] * 6 + [False]
    for c in claimed:
        assert c is not None
        done = await store.job_get(c.id)
        assert done is not None and (done.state, done.result) == ("done", {"n": c.id})


async def test_job_list_newest_first_by_state(store: Store) -> None:
    for i in range(1, 5):
        await store.job_enqueue(job(f"j{i}", created_at=T0 + i))
    claimed = await store.job_claim("w", T0 + 10, 30, job_id="j2")
    assert claimed is not None
    assert [j.id for j in await store.job_list()] == ["j4", "j3", "j2", "j1"]
    assert [j.id for j in await store.job_list(limit=2)] == ["j4", "j3"]
    assert [j.id for j in await store.job_list(state="queued")] == ["j4", "j3", "j1"]
    assert [j.id for j in await store.job_list(state="running")] == ["j2"]
    assert await store.job_list(state="dead") == []


async def test_job_list_merges_every_state_newest_first(store: Store) -> None:
    """The unfiltered list is one order across all four states: newest first, equal times by id
    (descending), cut to `limit` after merging, with more of one state than `limit`."""
    made = {"a": 1, "b": 2, "c": 3, "d": 3, "e": 4, "f": 5, "g": 6, "h": 7, "i": 7}
    for job_id, at in made.items():
        await store.job_enqueue(job(job_id, created_at=T0 + at))
    for job_id in ["b", "d", "e", "h"]:
        assert await store.job_claim("w", T0 + 10, 30, job_id=job_id) is not None
    await store.job_complete("b", "w")
    await store.job_complete("h", "w")
    await store.job_dead("e", "w", "x")
    await store.job_dead("g", None, "x")
    newest = sorted(made, key=lambda job_id: (made[job_id], job_id), reverse=True)
    assert [j.id for j in await store.job_list()] == newest == ["i", "h", "g", "f", "e", "d", "c", "b", "a"]
    for limit in (1, 2, 4, 6):
        assert [j.id for j in await store.job_list(limit=limit)] == newest[:limit]
    states = {j.id: j.state for j in await store.job_list()}
    assert [states[job_id] for job_id in "bdegi"] == ["done", "running", "dead", "dead", "queued"]
    assert [j.id for j in await store.job_list(state="queued", limit=2)] == ["i", "f"]


async def test_job_update_meta_merges(store: Store) -> None:
    await store.job_enqueue(job("j1", meta={"a": 1, "b": 2}))
    assert await store.job_update_meta("j1", {"b": 3, "progress": {"step": 2}}) is True
    assert await store.job_update_meta("j1", {}) is True
    assert await store.job_update_meta("missing", {"a": 1}) is False
    claimed = await store.job_claim("w", T0, 30)
    assert claimed is not None
    assert claimed.meta == {"a": 1, "b": 3, "progress": {"step": 2}}
    assert await store.job_complete("j1", "w", {"ok": True})
    done = await store.job_get("j1")
    assert done is not None and done.meta == {"a": 1, "b": 3, "progress": {"step": 2}}


# -- jobs: claiming ------------------------------------------------------------------------------
async def test_job_claim_earliest_due_first(store: Store) -> None:
    await store.job_enqueue(job("late", due_at=T0 + 30))
    await store.job_enqueue(job("early", due_at=T0 + 10))
    await store.job_enqueue(job("middle", due_at=T0 + 20))
    now = T0 + 100
    claimed = await store.job_claim("w1", now, 30)
    assert claimed is not None
    assert (claimed.id, claimed.state, claimed.lease_owner, claimed.lease_until) == ("early", "running", "w1", now + 30)
    assert claimed.attempts == 1
    assert await store.job_get("early") == claimed
    assert [(await store.job_claim("w1", now, 30) or job("none")).id for _ in range(2)] == ["middle", "late"]
    assert await store.job_claim("w1", now, 30) is None


async def test_job_not_due_is_not_claimed(store: Store) -> None:
    await store.job_enqueue(job("j1", due_at=T0 + 60))
    assert await store.job_claim("w", T0, 30) is None
    assert await store.job_claim("w", T0 + 59.9, 30) is None
    claimed = await store.job_claim("w", T0 + 60, 30)  # due_at <= now
    assert claimed is not None and claimed.id == "j1"


async def test_job_expired_lease_is_reclaimed(store: Store) -> None:
    await store.job_enqueue(job("j1"))
    first = await store.job_claim("a", T0, 30)
    assert first is not None and first.attempts == 1
    assert await store.job_claim("b", T0 + 29.9, 30) is None  # lease still held
    second = await store.job_claim("b", T0 + 30, 30)  # lease_until <= now: runnable again
    assert second is not None
    assert (second.id, second.lease_owner, second.lease_until, second.attempts) == ("j1", "b", T0 + 60, 2)
    # The first owner lost the job.
    assert await store.job_extend("j1", "a", T0 + 90) is False
    assert await store.job_complete("j1", "a") is False
    assert await store.job_retry("j1", "a", T0, "late") is False
    assert await store.job_dead("j1", "a", "late") is False
    assert await store.job_complete("j1", "b", {"by": "b"}) is True


async def test_job_expired_lease_competes_by_due_at(store: Store) -> None:
    await store.job_enqueue(job("old", due_at=T0))
    assert await store.job_claim("a", T0, 10) is not None
    await store.job_enqueue(job("newer", due_at=T0 + 5))
    reclaimed = await store.job_claim("b", T0 + 20, 10)
    assert reclaimed is not None and reclaimed.id == "old"
    nxt = await store.job_claim("b", T0 + 20, 10)
    assert nxt is not None and nxt.id == "newer"


async def test_job_claim_by_id(store: Store) -> None:
    await store.job_enqueue(job("soon", due_at=T0))
    await store.job_enqueue(job("later", due_at=T0 + 3600))
    claimed = await store.job_claim("w", T0, 30, job_id="later")  # ignores due_at
    assert claimed is not None and claimed.id == "later" and claimed.attempts == 1
    assert await store.job_claim("x", T0 + 10, 30, job_id="later") is None  # lease held
    assert await store.job_claim("w", T0, 30, job_id="missing") is None
    again = await store.job_claim("x", T0 + 30, 30, job_id="later")  # lease expired
    assert again is not None and again.lease_owner == "x" and again.attempts == 2
    assert await store.job_complete("later", "x")
    assert await store.job_claim("w", T0 + 100, 30, job_id="later") is None  # done
    soon = await store.job_get("soon")
    assert soon is not None and soon.state == "queued"


async def test_job_concurrent_claims_have_one_winner(store: Store) -> None:
    await store.job_enqueue(job("only"))
    results = await gather(*[lambda i=i: store.job_claim(f"w{i}", T0, 30) for i in range(10)])
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].id == "only" and winners[0].attempts == 1

    await store.job_enqueue(job("by-id"))
    results = await gather(*[lambda i=i: store.job_claim(f"w{i}", T0, 30, job_id="by-id") for i in range(10)])
    assert len([r for r in results if r is not None]) == 1


async def test_job_claim_of_one_kind(store: Store) -> None:
    await store.job_enqueue(job("answer-1", due_at=T0))
    await store.job_enqueue(Job(id="cb-1", kind="callback", payload={}, due_at=T0 + 5))
    await store.job_enqueue(job("answer-2", due_at=T0 + 1))
    await store.job_enqueue(Job(id="cb-2", kind="callback", payload={}, due_at=T0 + 6))
    first = await store.job_claim("cb", T0 + 10, 30, kind="callback")
    assert first is not None and first.id == "cb-1" and first.state == "running"
    assert await store.job_claim("cb", T0 + 10, 30, kind="nothing") is None
    # A kind's expired lease is claimed again by that kind only, and by anyone.
    again = await store.job_claim("cb2", T0 + 40, 30, kind="callback")
    assert again is not None and again.id == "cb-1" and again.attempts == 2
    second = await store.job_claim("cb2", T0 + 40, 30, kind="callback")
    assert second is not None and second.id == "cb-2"
    assert await store.job_claim("cb2", T0 + 40, 30, kind="callback") is None
    # Retried jobs come back into their kind's queue.
    assert await store.job_retry("cb-2", "cb2", T0 + 50, "later")
    assert await store.job_claim("cb2", T0 + 49, 30, kind="callback") is None
    assert [(await store.job_claim("any", T0 + 50, 30) or job("none")).id for _ in range(3)] == [
        "answer-1",
        "answer-2",
        "cb-2",
    ]
    assert await store.job_claim("cb2", T0 + 50, 30, kind="callback") is None


# -- jobs: claiming several at once ---------------------------------------------------------------
async def test_job_claim_many_takes_the_earliest_due_up_to_the_limit(store: Store) -> None:
    for i, due in enumerate([T0 + 4, T0 + 1, T0 + 3, T0 + 2, T0 + 5]):
        await store.job_enqueue(job(f"j{i}", due_at=due))
    await store.job_enqueue(job("future", due_at=T0 + 60))
    now = T0 + 10
    assert await store.job_claim_many("w", now, 30, limit=0) == []
    first = await store.job_claim_many("w", now, 30, limit=3)
    assert [j.id for j in first] == ["j1", "j3", "j2"]
    for claimed in first:
        assert (claimed.state, claimed.lease_owner, claimed.lease_until) == ("running", "w", now + 30)
        assert claimed.attempts == 1
        assert await store.job_get(claimed.id) == claimed
    rest = await store.job_claim_many("w", now, 30, limit=10)
    assert [j.id for j in rest] == ["j0", "j4"]  # "future" is not due
    assert await store.job_claim_many("w", now, 30, limit=10) == []
    assert await store.job_claim("w", now, 30) is None


async def test_job_claim_many_reclaims_expired_leases_with_job_claims_fencing(store: Store) -> None:
    await store.job_enqueue(job("a1", due_at=T0))
    await store.job_enqueue(job("a2", due_at=T0 + 2))
    taken = await store.job_claim_many("a", T0 + 2, 10, limit=2)
    assert [(j.id, j.attempts) for j in taken] == [("a1", 1), ("a2", 1)]
    await store.job_enqueue(job("q", due_at=T0 + 1))
    assert [j.id for j in await store.job_claim_many("b", T0 + 11.9, 10, limit=5)] == ["q"]  # leases still held
    assert await store.job_complete("q", "b", attempt=1) is True
    again = await store.job_claim_many("b", T0 + 12, 10, limit=5)  # lease_until <= now: runnable again
    assert [(j.id, j.lease_owner, j.lease_until, j.attempts) for j in again] == [
        ("a1", "b", T0 + 22, 2),
        ("a2", "b", T0 + 22, 2),
    ]
    # The first run lost its jobs: its outcomes are refused, the new run's are taken.
    assert await store.job_complete("a1", "a", {"by": "a"}, attempt=1) is False
    assert await store.job_retry("a2", "b", T0 + 50, "later", attempt=1) is False
    assert await store.job_complete("a1", "b", {"by": "b"}, attempt=2) is True
    assert await store.job_retry("a2", "b", T0 + 50, "later", attempt=2) is True
    assert await store.job_claim_many("b", T0 + 49, 10, limit=5) == []
    assert [j.id for j in await store.job_claim_many("b", T0 + 50, 10, limit=5)] == ["a2"]


async def test_job_claim_many_of_one_kind(store: Store) -> None:
    await store.job_enqueue(job("answer-1", due_at=T0))
    for i in range(3):
        await store.job_enqueue(Job(id=f"cb-{i}", kind="callback", payload={}, due_at=T0 + 5 + i))
    await store.job_enqueue(job("answer-2", due_at=T0 + 1))
    assert [j.id for j in await store.job_claim_many("cb", T0 + 10, 30, limit=2, kind="callback")] == ["cb-0", "cb-1"]
    assert await store.job_claim_many("cb", T0 + 10, 30, limit=5, kind="nothing") == []
    # A kind's expired leases come back to that kind's claims, beside its queued jobs.
    again = await store.job_claim_many("cb2", T0 + 40, 30, limit=5, kind="callback")
    assert [(j.id, j.attempts) for j in again] == [("cb-0", 2), ("cb-1", 2), ("cb-2", 1)]
    assert [j.id for j in await store.job_claim_many("any", T0 + 40, 30, limit=5)] == ["answer-1", "answer-2"]


async def test_job_concurrent_claim_many_never_hand_out_a_job_twice(store: Store) -> None:
    for i in range(40):
        await store.job_enqueue(job(f"j{i:02}", due_at=T0 + i % 7))
    calls: list[Callable[[], Awaitable[Any]]] = [
        functools.partial(store.job_claim_many, f"w{i}", T0 + 10, 30, limit=7) for i in range(6)
    ]
    calls += [functools.partial(store.job_claim, f"one{i}", T0 + 10, 30) for i in range(4)]
    results = await gather(*calls)
    claimed = [j for batch in results[:6] for j in batch] + [j for j in results[6:] if j is not None]
    ids = [j.id for j in claimed]
    assert len(ids) == len(set(ids)) == 40
    assert all(j.attempts == 1 for j in claimed)
    for batch in results[:6]:
        assert len(batch) <= 7
        assert [(j.due_at, j.id) for j in batch] == sorted((j.due_at, j.id) for j in batch)
    for claimed_job in claimed:
        stored = await store.job_get(claimed_job.id)
        assert stored is not None and (stored.state, stored.lease_owner) == ("running", claimed_job.lease_owner)


# -- jobs: fencing -------------------------------------------------------------------------------
async def test_job_updates_of_a_stale_attempt_are_refused(store: Store) -> None:
    """The same owner claiming its job again (a new run in the same process) fences out the old run."""
    await store.job_enqueue(job("j1"))
    old = await store.job_claim("w", T0, 30)
    new = await store.job_claim("w", T0 + 30, 30)
    assert old is not None and new is not None and (old.attempts, new.attempts) == (1, 2)
    assert await store.job_extend("j1", "w", T0 + 300, attempt=1) is False
    assert await store.job_complete("j1", "w", {"by": "old"}, attempt=1) is False
    assert await store.job_retry("j1", "w", T0, "old", attempt=1) is False
    assert await store.job_dead("j1", "w", "old", attempt=1) is False
    assert await store.job_extend("j1", "w", T0 + 300, attempt=2) is True
    assert await store.job_complete("j1", "w", {"by": "new"}, attempt=2) is True
    done = await store.job_get("j1")
    assert done is not None and done.result == {"by": "new"}


class Fence(TypedDict):
    job_id: str
    owner: str
    attempt: int


async def test_kv_set_fenced_only_while_the_run_holds_its_job(store: Store) -> None:
    await store.job_enqueue(job("j1"))
    first = await store.job_claim("a", T0, 30)
    assert first is not None
    fence: Fence = {"job_id": "j1", "owner": "a", "attempt": first.attempts}
    assert await store.kv_set_fenced("out:j1", "[1]", ttl=60, **fence) is True
    assert await store.kv_get("out:j1") == "[1]"
    assert await store.kv_set_fenced("out:j1", "[1,2]", **fence) is True  # overwrites
    assert await store.kv_get("out:j1") == "[1,2]"
    assert await store.kv_set_fenced("out:j1", "x", job_id="j1", owner="b", attempt=1) is False
    assert await store.kv_set_fenced("out:j1", "x", job_id="j1", owner="a", attempt=2) is False
    assert await store.kv_set_fenced("out:j1", "x", job_id="missing", owner="a", attempt=1) is False

    taken = await store.job_claim("b", T0 + 30, 30)  # the lease ran out: another run takes over
    assert taken is not None and taken.attempts == 2
    assert await store.kv_set_fenced("out:j1", "stale", **fence) is False  # the stale run is refused
    assert await store.kv_get("out:j1") == "[1,2]"
    assert await store.kv_set_fenced("out:j1", "[3]", job_id="j1", owner="b", attempt=2) is True
    assert await store.job_complete("j1", "b")
    assert await store.kv_set_fenced("out:j1", "late", job_id="j1", owner="b", attempt=2) is False
    assert await store.kv_get("out:j1") == "[3]"


# -- jobs: finishing -----------------------------------------------------------------------------
async def test_job_extend(store: Store) -> None:
    await store.job_enqueue(job("j1"))
    await store.job_claim("w", T0, 30)
    assert await store.job_extend("j1", "other", T0 + 300) is False
    assert await store.job_extend("missing", "w", T0 + 300) is False
    assert await store.job_extend("j1", "w", T0 + 300) is True
    assert await store.job_claim("x", T0 + 100, 30) is None  # the extended lease holds
    current = await store.job_get("j1")
    assert current is not None and current.lease_until == T0 + 300


async def test_job_complete_stores_result(store: Store) -> None:
    await store.job_enqueue(job("j1"))
    await store.job_enqueue(job("j2"))
    await store.job_claim("w", T0, 30, job_id="j1")
    await store.job_claim("w", T0, 30, job_id="j2")
    assert await store.job_complete("j1", "other", {"x": 1}) is False
    assert await store.job_complete("j1", "w", {"status": 200, "body": "ok"}) is True
    assert await store.job_complete("j1", "w") is False  # no longer running
    assert await store.job_complete("j2", "w") is True
    done = await store.job_get("j1")
    assert done is not None
    assert (done.state, done.lease_owner, done.lease_until) == ("done", None, None)
    assert done.result == {"status": 200, "body": "ok"}
    no_result = await store.job_get("j2")
    assert no_result is not None and no_result.result is None
    assert await store.job_claim("w", T0 + 1000, 30) is None


async def test_job_retry_requeues_at_due_at(store: Store) -> None:
    await store.job_enqueue(job("j1"))
    await store.job_claim("w", T0, 30)
    assert await store.job_retry("j1", "other", T0 + 60, "boom") is False
    assert await store.job_retry("j1", "w", T0 + 60, "HTTP 503") is True
    queued = await store.job_get("j1")
    assert queued is not None
    assert (queued.state, queued.due_at, queued.last_error, queued.lease_owner) == ("queued", T0 + 60, "HTTP 503", None)
    assert await store.job_claim("w", T0 + 59, 30) is None
    again = await store.job_claim("w2", T0 + 60, 30)
    assert again is not None and again.attempts == 2 and again.last_error == "HTTP 503"


async def test_job_dead_and_replay(store: Store) -> None:
    await store.job_enqueue(job("owned"))
    await store.job_enqueue(job("queued"))
    await store.job_claim("w", T0, 30, job_id="owned")
    assert await store.job_dead("owned", "other", "no") is False
    assert await store.job_dead("owned", "w", "gave up") is True
    assert await store.job_dead("queued", None, "operator") is True  # no owner: any unfinished job
    assert await store.job_replay("missing", T0) is False
    dead = await store.job_get("owned")
    assert dead is not None and (dead.state, dead.last_error, dead.attempts) == ("dead", "gave up", 1)
    assert [j.id for j in await store.job_list(state="dead")] == ["queued", "owned"]
    assert await store.job_claim("w", T0 + 1000, 30) is None

    assert await store.job_replay("owned", T0 + 500) is True
    assert await store.job_replay("owned", T0 + 500) is False  # only dead jobs
    replayed = await store.job_get("owned")
    assert replayed is not None
    assert (replayed.state, replayed.attempts, replayed.due_at) == ("queued", 0, T0 + 500)
    claimed = await store.job_claim("w", T0 + 500, 30)
    assert claimed is not None and claimed.id == "owned" and claimed.attempts == 1


async def test_job_dead_without_owner_refuses_done_jobs(store: Store) -> None:
    await store.job_enqueue(job("j1"))
    await store.job_claim("w", T0, 30)
    await store.job_complete("j1", "w")
    assert await store.job_dead("j1", None, "too late") is False
    assert await store.job_dead("missing", None, "x") is False


async def test_job_purge_finished_before(store: Store, clock: FakeClock) -> None:
    for job_id in ["done-old", "dead-old", "done-new", "queued-old", "running-old"]:
        await store.job_enqueue(job(job_id, key=f"key-{job_id}"))
    await store.job_claim("w", T0, 3600, job_id="done-old")
    await store.job_claim("w", T0, 3600, job_id="running-old")
    await store.job_complete("done-old", "w")
    await store.job_dead("dead-old", None, "x")
    clock.advance(100)
    await store.job_claim("w", T0, 3600, job_id="done-new")
    await store.job_complete("done-new", "w")

    assert await store.job_purge(clock.time() - 50) == 2
    assert await store.job_get("done-old") is None and await store.job_get("dead-old") is None
    assert {j.id for j in await store.job_list()} == {"done-new", "queued-old", "running-old"}
    assert await store.job_list(state="dead") == []
    assert await store.job_purge(clock.time() - 50) == 0
    # The idempotency key of a purged job is free again.
    _, created = await store.job_enqueue(job("fresh", key="key-done-old"))
    assert created is True
    assert await store.job_purge(clock.time() + 1) == 1  # done-new


# -- the lease lock (gateway/storage/lock.py), built on the atomic operations above ---------------


async def test_lease_lock_has_one_holder_and_only_the_holder_releases(store: Store) -> None:
    a, b = LeaseLock(store, "lock:x", ttl=30, owner="a"), LeaseLock(store, "lock:x", ttl=30, owner="b")
    results = await gather(a.acquire, b.acquire)
    assert results.count(True) == 1
    holder, other = (a, b) if results[0] else (b, a)
    assert await other.release() is False  # owner-checked: the other can't free it…
    assert await other.renew() is False  # …nor keep it
    assert await holder.holder() == holder.owner
    assert await holder.release() is True
    assert await holder.release() is False  # released once
    assert await other.acquire() is True


async def test_lease_lock_expires_unless_renewed(store: Store, clock: FakeClock) -> None:
    kept = LeaseLock(store, "lock:kept", ttl=SHORT_TTL, owner="me")
    dropped = LeaseLock(store, "lock:dropped", ttl=SHORT_TTL, owner="me")
    assert await kept.acquire() and await dropped.acquire()
    await pass_time(clock, SHORT_TTL / 2)
    assert await kept.renew()  # another full TTL from now
    await pass_time(clock, SHORT_TTL / 2 + 0.05)
    assert await kept.holder() == "me"
    assert await dropped.holder() is None  # its holder died: the lock frees itself
    assert await LeaseLock(store, "lock:dropped", ttl=30, owner="next").acquire()
    assert await dropped.renew() is False and await dropped.release() is False  # taken over: hands off
    assert await dropped.holder() == "next"


async def test_lease_lock_held_waits_renews_and_releases(store: Store, clock: FakeClock) -> None:
    first = LeaseLock(store, "lock:held", ttl=SHORT_TTL, owner="first")
    async with first.held(clock) as lock:
        assert lock is first and await first.holder() == "first"
        with pytest.raises(LockBusy):
            async with LeaseLock(store, "lock:held", ttl=30, owner="second").held(clock):
                pytest.fail("taken while held")
        for _ in range(3):  # three TTLs: kept only because it is renewed (every TTL / 3) meanwhile
            await anyio.sleep(SHORT_TTL / 3 + 0.02)
            clock.advance(SHORT_TTL / 3 + 0.02)
            await anyio.sleep(0.02)  # let the renewal run
        assert await first.holder() == "first" and not first.lost
    assert await first.holder() is None  # released on the way out
    async with LeaseLock(store, "lock:held", ttl=30, owner="second").held(clock):
        assert await store.kv_get("lock:held") == "second"


async def test_lease_lock_waits_on_the_clock_for_as_long_as_asked(store: Store, clock: FakeClock) -> None:
    assert await LeaseLock(store, "lock:wait", ttl=30, owner="holder").acquire()
    started = clock.monotonic()
    with pytest.raises(LockBusy):
        async with LeaseLock(store, "lock:wait", ttl=30, owner="waiter").held(clock, wait=1.0, poll=0.25):
            pytest.fail("taken while held")
    assert clock.monotonic() - started == 1.0  # polled every 0.25 s for 1 s, then gave up
