"""`ReadCache` (gateway/records/cache.py); the request path reading through it: test_endpoints.py."""

from __future__ import annotations

import asyncio

import pytest

from gateway.clock import FakeClock
from gateway.records.cache import ReadCache

pytestmark = pytest.mark.anyio


class Reads:
    """A store read the test lets finish (`release`), counting how often it ran."""

    def __init__(self) -> None:
        self.count = 0
        self.gate = asyncio.Event()
        self.value: object = ["v"]
        self.fail: Exception | None = None

    async def __call__(self) -> object:
        self.count += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return list(self.value) if isinstance(self.value, list) else self.value  # a new, equal object

    def release(self) -> None:
        self.gate.set()


async def test_concurrent_misses_share_one_read_and_one_object() -> None:
    cache: ReadCache[str, object] = ReadCache(FakeClock(), ttl=1.0, size=10)
    read = Reads()
    waiting = [asyncio.ensure_future(cache.get("k", read)) for _ in range(20)]
    await asyncio.sleep(0)
    read.release()
    values = await asyncio.gather(*waiting)
    assert read.count == 1
    assert all(value is values[0] for value in values)


async def test_a_value_is_trusted_for_ttl_then_read_again_keeping_an_unchanged_object() -> None:
    clock = FakeClock()
    cache: ReadCache[str, object] = ReadCache(clock, ttl=1.0, size=10)
    read = Reads()
    read.release()
    first = await cache.get("k", read)
    clock.advance(0.9)
    assert await cache.get("k", read) is first and read.count == 1
    clock.advance(0.2)
    again = await cache.get("k", read)
    assert read.count == 2
    assert again is first  # read again, equal: the object handed out before stays the one
    read.value = ["changed"]
    clock.advance(1.1)
    changed = await cache.get("k", read)
    assert changed == ["changed"] and read.count == 3


async def test_clear_during_a_read_keeps_its_value_out_of_the_cache() -> None:
    """A change made here while a read runs: the read's (stale) value is never cached."""
    cache: ReadCache[str, object] = ReadCache(FakeClock(), ttl=1.0, size=10)
    stale = Reads()
    waiting = asyncio.ensure_future(cache.get("k", stale))
    await asyncio.sleep(0)
    cache.clear()
    fresh = Reads()
    fresh.value = ["new"]
    fresh.release()
    assert await cache.get("k", fresh) == ["new"]  # arrived after the clear: its own read
    stale.release()
    assert await waiting == ["v"]  # the waiter gets what its read returned
    assert await cache.get("k", fresh) == ["new"] and fresh.count == 1  # the stale value was not kept


async def test_a_cancelled_waiter_leaves_the_read_to_the_others() -> None:
    cache: ReadCache[str, object] = ReadCache(FakeClock(), ttl=1.0, size=10)
    read = Reads()
    leaving = asyncio.ensure_future(cache.get("k", read))
    staying = asyncio.ensure_future(cache.get("k", read))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    read.release()
    assert await staying == ["v"] and read.count == 1
    assert leaving.cancelled()


async def test_a_failed_read_reaches_every_waiter_and_is_not_cached() -> None:
    cache: ReadCache[str, object] = ReadCache(FakeClock(), ttl=1.0, size=10)
    read = Reads()
    read.fail = RuntimeError("store down")
    waiting = [asyncio.ensure_future(cache.get("k", read)) for _ in range(3)]
    await asyncio.sleep(0)
    read.release()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    read.fail = None
    assert await cache.get("k", read) == ["v"] and read.count == 2


async def test_at_size_the_cache_starts_over() -> None:
    cache: ReadCache[int, object] = ReadCache(FakeClock(), ttl=1.0, size=3)
    read = Reads()
    read.release()
    for key in range(3):
        await cache.get(key, read)
    assert all(cache.knows(key) for key in range(3))
    await cache.get(3, read)
    assert cache.knows(3) and not cache.knows(0)
