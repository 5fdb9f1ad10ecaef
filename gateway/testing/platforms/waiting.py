"""Waiting in tests for a fake platform to have been called as expected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["wait_until"]


async def wait_until(condition: Callable[[], bool], describe: Callable[[], str], *, timeout: float = 15.0) -> None:
    """Poll `condition` (real time: the fake is served by a real server) until it holds; fail
    after `timeout` seconds with `describe()` (what the fake saw)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met; {describe()}")
        await asyncio.sleep(0.02)
