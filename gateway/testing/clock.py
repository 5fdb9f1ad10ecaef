"""Virtual time for tests: a `Clock` that moves only while every task waits."""

from __future__ import annotations

import asyncio

__all__ = ["VirtualClock"]

# Event-loop turns a sleeper yields before it takes time as idle: enough for every ready task (an
# in-process HTTP exchange, a queue hand-over) to run to its next wait.
_IDLE_TURNS = 50


class VirtualClock:
    """A `Clock` on virtual time that moves only while every task waits, like trio's autojump
    `MockClock`: sleepers wake in the order of their deadlines, however many sleep at once.

    (`gateway.clock.FakeClock` moves time by the whole delay for whoever sleeps first, so an
    engine waiting out its throttle while the answer's deltas arrive would see time run twice.)

    `advance(seconds)` moves time by hand (TTLs, leases); sleepers whose deadline passed wake.
    Work that waits on real I/O (a server in another thread) is not seen as busy: use the system
    clock for it.
    """

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self._epoch = now
        self._now = 0.0
        self._sleepers: list[tuple[float, int]] = []
        self._idle: list[tuple[float, asyncio.Future[None]]] = []
        self._seq = 0

    def time(self) -> float:
        return self._epoch + self._now

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        self._wake_idle()

    async def idle(self, seconds: float) -> None:
        """Background pauses (heartbeats, polls) wait for the sleepers to move time past their
        deadline: they never move time themselves."""
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append((self._now + max(0.0, seconds), waiter))
        await waiter

    def _wake_idle(self) -> None:
        for deadline, waiter in [idle for idle in self._idle if idle[0] <= self._now]:
            self._idle.remove((deadline, waiter))
            if not waiter.done():
                waiter.set_result(None)

    async def sleep(self, seconds: float) -> None:
        self._seq += 1
        me = (self._now + max(0.0, seconds), self._seq)
        self._sleepers.append(me)
        try:
            while True:
                for _ in range(_IDLE_TURNS):  # let every task that can run, run
                    await asyncio.sleep(0)
                if self._now >= me[0]:  # advanced past the deadline by hand
                    return
                if min(self._sleepers) == me:  # the earliest of the sleepers: time moves to its deadline
                    self._now = max(self._now, me[0])
                    self._wake_idle()
                    return
        finally:
            self._sleepers.remove(me)
