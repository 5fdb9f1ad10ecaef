"""Shared fixtures. Async tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServerUnavailable, running_redis_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real redis-server for the session; tests isolate themselves by key prefix or flush."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(running_redis_server())
        except RedisServerUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        yield url


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    """A Redis database of its own (flushed before and after), for tests of whole gateway processes."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/3"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
