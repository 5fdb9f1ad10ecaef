"""Fixtures for the storage contract: every test using `store` runs once per backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.storage.base import Store
from gateway.storage.redis import RedisStore
from gateway.storage.sqlite import SQLiteStore


@pytest.fixture
def clock() -> FakeClock:
    # Starts at the real time so SQLite's clock-based TTLs and Redis's real ones agree at first.
    return FakeClock(time.time())


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[Store]:
    """A fresh, empty store of each backend, closed after the test."""
    opened: Store
    if request.param == "sqlite":
        opened = await SQLiteStore.open(str(tmp_path / "store.db"), clock=clock)
    else:
        url = request.getfixturevalue("redis_url")
        opened = RedisStore.from_url(url, clock=clock, prefix=f"test-{uuid.uuid4().hex}:")
    try:
        yield opened
    finally:
        await opened.aclose()
