"""Conversation memory and ordered per-conversation locks, on both stores."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.clock import FakeClock, SystemClock
from gateway.dify.conversations import ConversationLocks, ConversationMap
from gateway.storage.base import Store
from gateway.storage.redis import RedisStore
from gateway.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened: Store = await SQLiteStore.open(str(tmp_path / "c.db"), clock=SystemClock())
    else:
        url = request.getfixturevalue("redis_url")
        opened = RedisStore.from_url(url, clock=SystemClock(), prefix=f"conv-{uuid.uuid4().hex}:")
    yield opened
    await opened.aclose()


async def test_memory_is_per_key_and_user_and_reset_drops_every_user(store: Store) -> None:
    memory = ConversationMap(store, "ep:app")
    await memory.put("thread-1", "alice", "conv-a")
    await memory.put("thread-1", "bob", "conv-b")
    await memory.put("thread-2", "alice", "conv-c")
    assert await memory.get("thread-1", "alice") == "conv-a"
    assert await memory.get("thread-1", "bob") == "conv-b"
    assert await memory.get("thread-1", "carol") is None
    assert await ConversationMap(store, "other:app").get("thread-1", "alice") is None
    await memory.reset("thread-1")
    assert await memory.get("thread-1", "alice") is None and await memory.get("thread-1", "bob") is None
    assert await memory.get("thread-2", "alice") == "conv-c"
    await memory.forget("thread-2", "alice")
    assert await memory.get("thread-2", "alice") is None


async def test_answers_of_one_conversation_run_one_at_a_time_in_arrival_order(store: Store) -> None:
    locks = ConversationLocks(store, SystemClock(), poll=0.01)
    running = 0
    order: list[int] = []

    async def answer(n: int) -> None:
        nonlocal running
        async with locks.hold("conv"):
            running += 1
            assert running == 1
            order.append(n)
            await asyncio.sleep(0.02)
            running -= 1

    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(answer(n)))
        await _until_ticket(store, "conv", n + 1)  # arrived: the next one arrives after it
    await asyncio.gather(*tasks)
    assert order == list(range(6))


async def test_other_conversations_are_not_held_up(store: Store) -> None:
    clock = FakeClock()  # the locks' waits: a wait for "busy" would move it on
    locks = ConversationLocks(store, clock, poll=0.01)
    async with locks.hold("busy"):
        async with locks.hold("free"):
            assert await store.kv_get(_lock_key("free")) is not None  # taken, not gone ahead after max_wait
        assert clock.monotonic() == 0  # not one poll: "free" never waited


async def test_a_dead_holder_is_taken_over_after_its_lease(store: Store) -> None:
    dead = ConversationLocks(store, SystemClock(), lease=0.3, poll=0.01, stale_after=0.1)
    holder = asyncio.create_task(_hold_forever(dead))
    await asyncio.sleep(0.05)
    holder.cancel()  # stands in for a crash: the shielded release is skipped below
    with pytest.raises(asyncio.CancelledError):
        await holder
    # A crash releases nothing: put the lock back as the dead holder left it.
    await store.kv_set(_lock_key("conv"), "1", ttl=0.3)
    await store.kv_set(_serving_key("conv"), "1", ttl=60)
    survivor = ConversationLocks(store, SystemClock(), lease=0.3, poll=0.01, stale_after=0.1, max_wait=60)
    started = time.monotonic()
    async with survivor.hold("conv"):
        waited = time.monotonic() - started
        assert await store.kv_get(_lock_key("conv")) == "2"  # its own ticket: it took the lock, once it was free
    assert 0.1 < waited < 60  # it waited for the lock to be stale, not until it gave up (max_wait)


async def test_a_new_key_is_held_at_once_and_later_arrivals_follow_it_in_order(store: Store) -> None:
    locks = ConversationLocks(store, SystemClock(), poll=0.01)
    order: list[int] = []
    running = 0

    async def answer(n: int) -> None:
        nonlocal running
        # The first to arrive looks least often: it still goes first.
        async with ConversationLocks(store, SystemClock(), poll=0.05 if n == 1 else 0.005).hold("conv"):
            running += 1
            assert running == 1
            order.append(n)
            await asyncio.sleep(0.01)
            running -= 1

    async with locks.hold_new_soon("conv") as taken:
        await taken()
        # One write: the lock, as ticket 0; no ticket drawn, no turn marked.
        assert await store.kv_get(_lock_key("conv")) == "0"
        assert await store.kv_get(_tail_key("conv")) is None and await store.kv_get(_serving_key("conv")) is None
        tasks = []
        for n in range(1, 4):  # they learned the key while its first answer runs
            tasks.append(asyncio.create_task(answer(n)))
            await _until_ticket(store, "conv", n)
        order.append(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert await store.kv_get(_lock_key("conv")) is None


async def test_a_new_key_that_is_held_after_all_waits_its_turn(store: Store) -> None:
    locks = ConversationLocks(store, SystemClock(), poll=0.01)
    entered = asyncio.Event()

    async def misused() -> None:
        async with locks.hold_new_soon("conv") as taken:
            await taken()
            entered.set()

    async with locks.hold("conv"):
        task = asyncio.create_task(misused())
        await _until_ticket(store, "conv", 2)  # it queued behind the holder instead of going ahead
        assert not entered.is_set()
    await task
    assert entered.is_set()


async def _hold_forever(locks: ConversationLocks) -> None:
    async with locks.hold("conv"):
        await asyncio.sleep(60)


async def _until_ticket(store: Store, key: str, ticket: int) -> None:
    """Until the `ticket`-th waiter of `key` took its ticket (arrival order is ticket order)."""
    for _ in range(10_000):
        if await store.kv_get(_tail_key(key)) == str(ticket):
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"waiter {ticket} of {key!r} never took its ticket")


def _lock_key(key: str) -> str:
    from gateway.dify.conversations import _h

    return f"clock:{_h(key)}:lock"


def _tail_key(key: str) -> str:
    from gateway.dify.conversations import _h

    return f"clock:{_h(key)}:tail"


def _serving_key(key: str) -> str:
    from gateway.dify.conversations import _h

    return f"clock:{_h(key)}:serving"


async def test_a_new_key_taken_in_the_background_is_held_once_waited_for_and_free_if_never(store: Store) -> None:
    locks = ConversationLocks(store, SystemClock(), poll=0.01)
    async with locks.hold_new_soon("conv") as taken:
        await taken()
        assert await store.kv_get(_lock_key("conv")) == "0"
        await taken()  # waiting again changes nothing
    assert await store.kv_get(_lock_key("conv")) is None

    with pytest.raises(RuntimeError):
        async with locks.hold_new_soon("conv"):
            raise RuntimeError("the block failed before it showed the key")
    assert await store.kv_get(_lock_key("conv")) is None  # the write ran, and was let go
    async with locks.hold_new_soon("conv") as taken:  # nothing is left queued or held
        await taken()
        assert await store.kv_get(_tail_key("conv")) is None
