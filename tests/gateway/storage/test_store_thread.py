"""The SQLite backend's store thread: calls run in order, off the loop, results and errors handed back."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from gateway.storage._store_thread import Raised, StoreThread

pytestmark = pytest.mark.anyio


async def test_calls_run_in_order_on_one_other_thread() -> None:
    worker = StoreThread("test-store")
    seen: list[tuple[int, str]] = []

    def call(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 2

    try:
        results = await asyncio.gather(*(worker.run(functools.partial(call, i)) for i in range(50)))
    finally:
        worker.close()
    assert results == [i * 2 for i in range(50)]
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-store"}


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    worker = StoreThread("test-store")

    def fail() -> None:
        raise ValueError("bad row")

    try:
        with pytest.raises(ValueError, match="bad row"):
            await worker.run(fail)
        assert await worker.run(lambda: 7) == 7
    finally:
        worker.close()


async def test_a_call_cancelled_before_the_thread_reaches_it_is_skipped() -> None:
    worker = StoreThread("test-store")
    entered, gate = threading.Event(), threading.Event()
    ran: list[str] = []

    def block() -> None:
        entered.set()
        gate.wait()

    try:
        blocker = asyncio.ensure_future(worker.run(block))
        # Until the thread runs `block`, its batch is still open: the next call could join it.
        assert await asyncio.to_thread(entered.wait, 10)
        skipped = asyncio.ensure_future(worker.run(lambda: ran.append("skipped")))
        await asyncio.sleep(0)
        skipped.cancel()
        gate.set()
        await blocker
        assert await worker.run(lambda: "after") == "after"
    finally:
        worker.close()
    assert ran == []


async def test_a_posted_call_hands_its_outcome_to_its_callback_on_the_loop() -> None:
    worker = StoreThread("test-store")
    loop_thread = threading.current_thread()
    landed: asyncio.Queue[tuple[object, threading.Thread]] = asyncio.Queue()

    def fail() -> None:
        raise ValueError("bad row")

    try:
        worker.post(lambda: 7, lambda outcome: landed.put_nowait((outcome, threading.current_thread())))
        worker.post(fail, lambda outcome: landed.put_nowait((outcome, threading.current_thread())))
        (first, first_thread), (second, second_thread) = await landed.get(), await landed.get()
    finally:
        worker.close()
    assert first == 7 and first_thread is loop_thread
    assert isinstance(second, Raised) and isinstance(second.exc, ValueError) and second_thread is loop_thread
