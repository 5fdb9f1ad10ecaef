"""Shared fixtures. Async tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.hangs import dump_everything, install_dump_on_signal
from tests.support.redis_server import RedisServerUnavailable, running_redis_server


def pytest_configure(config: pytest.Config) -> None:
    """`kill -USR1 <pid>`: where a running test waits (threads and asyncio tasks), on the terminal."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def dump() -> None:
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            dump_everything()

    install_dump_on_signal(dump)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's signal method (the default in pyproject.toml), with every asyncio task's
    stack printed before the test fails: a hung test is parked in the event loop, where the thread
    stacks pytest-timeout prints show nothing useful."""
    if settings.method != "signal":
        return None  # pytest-timeout's own timer
    from pytest_timeout import timeout_sigalrm

    def on_timeout(_signum: int, _frame: object) -> None:
        __tracebackhide__ = True
        dump_everything()
        timeout_sigalrm(item, settings)

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # what pytest-timeout's cancel hook calls
    signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


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
