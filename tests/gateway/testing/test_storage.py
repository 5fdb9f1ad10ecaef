"""`MemoryStorage` keeps the plugin storage contract: every test runs against it and against the
gateway's own `ctx.storage` on a real SQLite store, on the same fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.host.context import EndpointStorage
from gateway.plugin import LeaseLost, Storage
from gateway.storage.sqlite import SQLiteStore
from gateway.testing import FakeLease, MemoryStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
async def storage(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage(clock)
        return
    store = await SQLiteStore.open(str(tmp_path / "store.db"), clock=clock)
    try:
        yield EndpointStorage(store, "ep_1", clock)
    finally:
        await store.aclose()


async def test_set_get_delete(storage: Storage) -> None:
    assert await storage.get("k") is None
    await storage.set("k", "v1")
    await storage.set("k", "v2")
    assert await storage.get("k") == "v2"
    assert await storage.delete("k") is True
    assert await storage.delete("k") is False
    assert await storage.get("k") is None


async def test_ttls_run_on_the_clock(storage: Storage, clock: FakeClock) -> None:
    await storage.set("short", "1", ttl=5)
    await storage.set("reset", "1", ttl=5)
    await storage.set("reset", "2")  # a plain set drops the TTL
    assert await storage.set_if_absent("nx", "a", ttl=5) is True
    assert await storage.set_if_absent("nx", "b") is False
    clock.advance(4.9)
    assert await storage.get("short") == "1"
    clock.advance(0.2)
    assert await storage.get("short") is None
    assert await storage.get("reset") == "2"
    assert await storage.delete("short") is False  # expired counts as absent
    assert await storage.set_if_absent("nx", "b") is True
    assert await storage.get("nx") == "b"


async def test_incr(storage: Storage, clock: FakeClock) -> None:
    assert await storage.incr("n") == 1
    assert await storage.incr("n", 5) == 6
    assert await storage.incr("n", -2) == 4
    assert await storage.get("n") == "4"
    assert await storage.incr("window", ttl=5) == 1
    assert await storage.incr("window", ttl=60) == 2  # the TTL applies on creation only
    clock.advance(5.1)
    assert await storage.incr("window", ttl=5) == 1  # an expired counter starts again
    await storage.set("text", "abc")
    with pytest.raises(ValueError, match="integer"):
        await storage.incr("text")
    assert await storage.get("text") == "abc"


async def test_a_fenced_set_needs_the_lease(storage: Storage) -> None:
    lease = FakeLease(attempt=1)
    await storage.set("posted", "m1", fence=lease)
    assert await storage.get("posted") == "m1"
    if isinstance(storage, MemoryStorage):  # the SQLite one fences only the workers' own leases
        lease.lose()
        with pytest.raises(LeaseLost):
            await storage.set("posted", "m2", fence=lease)
        assert await storage.get("posted") == "m1"


async def test_memory_storage_shows_what_is_stored(clock: FakeClock) -> None:
    storage = MemoryStorage(clock)
    await storage.set("a", "1", ttl=10)
    await storage.set("b", "2")
    assert storage.data == {"a": "1", "b": "2"} and storage.ttl("a") == 10 and storage.ttl("b") is None
    clock.advance(10)
    assert storage.data == {"b": "2"} and storage.ttl("a") is None
