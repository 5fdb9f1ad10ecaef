"""A new thread's conversation lock is written while its Dify stream opens (`Bridge.stream` with
`new_conversation=True`), and the stream is handed out only once the lock is held; when the
write fails, the opened stream is closed and the call fails with the store's error."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httpx
import pytest
import respx

from gateway.clock import FakeClock
from gateway.dify import DifyClient
from gateway.dify.bridge import Bridge
from gateway.dify.conversations import ConversationLocks, ConversationMap, _h
from gateway.exceptions import StoreError, UpstreamError
from gateway.records.apps import AppRecord
from gateway.storage.base import Store
from tests.gateway.dify.conftest import BASE, end, msg, sse_response
from tests.gateway.test_conversations import store as store  # SQLite and Redis, as there

pytestmark = pytest.mark.anyio

THREAD = "thr_new"
LOCK = "clock:" + _h(f"ep_1:support:{THREAD}\x00alice") + ":lock"
GUARD = 10.0  # only so the old order fails instead of hanging: the write waits for Dify's open


class HeldBackLock:
    """The store, but the conversation lock's write waits until Dify was asked (or GUARD passed),
    then succeeds or fails (`fail`); `order` says what happened when."""

    def __init__(self, store: Store, opened: asyncio.Event, *, fail: bool = False) -> None:
        self._store = store
        self._opened = opened
        self._fail = fail
        self.order: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def kv_set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool:
        if key != LOCK:
            return await self._store.kv_set_if_absent(key, value, ttl=ttl)
        self.order.append("lock write started")
        try:
            await asyncio.wait_for(self._opened.wait(), GUARD)
        except TimeoutError:
            self.order.append("Dify not asked while the lock was written")
        if self._fail:
            raise StoreError("the store is unavailable")
        taken = await self._store.kv_set_if_absent(key, value, ttl=ttl)
        self.order.append("lock taken")
        return taken


def _record() -> AppRecord:
    return AppRecord(name="support", base_url=BASE, api_key="x", mode="chat", created_at=0.0, updated_at=0.0)


def _bridge(store: HeldBackLock, real: Store, client: DifyClient) -> Bridge:
    held = cast(Store, store)
    return Bridge(
        endpoint_id="ep_1",
        records={"support": _record()},
        dify=client,
        store=real,
        locks=ConversationLocks(held, FakeClock()),
        key_of=lambda record: "app-secret",
    )


def _dify(router: respx.MockRouter, store: HeldBackLock, opened: asyncio.Event) -> list[str]:
    """Dify's answer; the stop calls it got are listed in what this returns."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        store.order.append("Dify asked")
        opened.set()
        return sse_response(msg("Hi", conversation_id="conv-9"), end(conversation_id="conv-9"))

    def stop(request: httpx.Request) -> httpx.Response:
        seen.append("stopped")
        return httpx.Response(200, json={"result": "success"})

    router.post(f"{BASE}/chat-messages").mock(side_effect=answer)
    router.post(f"{BASE}/chat-messages/task-1/stop").mock(side_effect=stop)
    return seen


async def test_a_new_thread_opens_dify_while_its_lock_is_written(
    store: Store, router: respx.MockRouter, client: DifyClient
) -> None:
    opened = asyncio.Event()
    held_back = HeldBackLock(store, opened)
    _dify(router, held_back, opened)
    bridge = _bridge(held_back, store, client)

    async with bridge.stream("hello", user="alice", conversation_key=THREAD, new_conversation=True) as answer:
        held_back.order.append("handed out")
        assert await store.kv_get(LOCK) == "0"  # held before anyone can learn the thread
        text = (await answer.collect()).text

    # Dify was asked while the write was under way (the old order: the lock, then Dify).
    assert sorted(held_back.order[:2]) == ["Dify asked", "lock write started"]
    assert held_back.order[2:] == ["lock taken", "handed out"]
    assert text == "Hi"
    assert await store.kv_get(LOCK) is None
    assert await ConversationMap(store, "ep_1:support").get(THREAD, "alice") == "conv-9"


async def test_a_failed_lock_write_closes_the_dify_stream_and_fails_with_the_store_error(
    store: Store, router: respx.MockRouter, client: DifyClient
) -> None:
    opened = asyncio.Event()
    held_back = HeldBackLock(store, opened, fail=True)
    seen = _dify(router, held_back, opened)
    bridge = _bridge(held_back, store, client)
    handed_out = False

    with pytest.raises(StoreError, match="the store is unavailable"):
        async with bridge.stream("hello", user="alice", conversation_key=THREAD, new_conversation=True):
            handed_out = True

    assert not handed_out
    assert sorted(held_back.order) == ["Dify asked", "lock write started"]
    assert seen == ["stopped"]  # the stream was closed before its end: the answer Dify started is stopped
    # The Dify conversation that opened is never remembered (nor shown): the thread starts afresh.
    assert await ConversationMap(store, "ep_1:support").get(THREAD, "alice") is None
    assert await store.kv_get(LOCK) is None


async def test_a_new_thread_that_fails_to_open_leaves_its_lock_free(
    store: Store, router: respx.MockRouter, client: DifyClient
) -> None:
    opened = asyncio.Event()
    held_back = HeldBackLock(store, opened)

    def refused(request: httpx.Request) -> httpx.Response:
        opened.set()
        return httpx.Response(400, json={"code": "invalid_param", "message": "x", "status": 400})

    router.post(f"{BASE}/chat-messages").mock(side_effect=refused)
    bridge = _bridge(held_back, store, client)

    with pytest.raises(UpstreamError) as raised:  # Dify's refusal, not a store error
        async with bridge.stream("hello", user="alice", conversation_key=THREAD, new_conversation=True):
            pass

    assert (raised.value.upstream_status, raised.value.upstream_code) == (400, "invalid_param")
    assert held_back.order[-1] == "lock taken"  # the write ran; then it was let go
    assert await store.kv_get(LOCK) is None
