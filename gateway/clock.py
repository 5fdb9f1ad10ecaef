"""Time as an injected collaborator, so replay windows, leases and retries are testable.

Every read of the time and every wait goes through a `Clock` (tests/test_architecture.py checks
it). Two kinds of waits:

- `sleep`: work that waits (a throttle, a backoff, a poll for a result). A fake clock moves its
  time on instead of waiting, so the test runs at once.
- `idle`: the pause between rounds of background work (a heartbeat, a lease renewal, a flush, a
  purge). A fake clock wakes an idle task only once something else moved its time past the
  deadline (`advance`, or a `sleep`): a background loop never pushes fake time on by itself,
  which would race the time of everything else in the test forward.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""

    async def sleep(self, seconds: float) -> None:
        """Wait for `seconds` on this clock."""

    async def idle(self, seconds: float) -> None:
        """Wait `seconds` between two rounds of background work."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def idle(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told; `sleep` advances it instead of waiting, `idle` waits for it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self._mono = 0.0
        self._idle: list[tuple[float, int, asyncio.Future[None]]] = []  # (monotonic deadline, seq, waiter)
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, waking the idle tasks whose time has come (earliest first)."""
        self.now += seconds
        self._mono += seconds
        while self._idle and self._idle[0][0] <= self._mono:
            _, _, waiter = heapq.heappop(self._idle)
            if not waiter.done():
                waiter.set_result(None)

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    async def idle(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._idle, (self._mono + seconds, next(self._seq), waiter))
        await waiter
