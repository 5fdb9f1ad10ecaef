"""Fixtures for the storage contract: every test using `store` runs once per backend."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.storage.base import Store
from gateway.storage.redis import RedisStore
from gateway.storage.sqlite import SQLiteStore
from tests.support.redis_server import RedisServerUnavailable, running_redis_server


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """One real redis-server for the whole session; tests isolate themselves by key prefix."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(running_redis_server())
        except RedisServerUnavailable as exc:
            problem = str(exc)  # failed below, outside the except, so the message is shown once
        else:
            problem = ""
        if problem:
            pytest.fail(problem, pytrace=False)
        yield url


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
        url = request.getfixturevalue("redis_server_url")
        opened = RedisStore.from_url(url, clock=clock, prefix=f"test-{uuid.uuid4().hex}:")
    try:
        yield opened
    finally:
        await opened.aclose()
