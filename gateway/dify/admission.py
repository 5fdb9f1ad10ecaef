"""`Admission`: how many answers one process runs at once; the rest wait in line, for a while.

Every answer of every surface (webhook, OpenAI, Slack, Discord, the bot) is a `DifyClient.stream`,
which takes a place here before it talks to Dify and gives it back after the stop call. Past
`queue_timeout` (on the injected clock) a waiting answer gets `Overloaded` with `retry_after`:
a clear "come back later" from this process, never counted against the Dify app.

Example:
    admission = Admission(SystemClock(), limit=1000, queue_timeout=30.0)
    await admission.enter()  # or Overloaded
    try:
        ...
    finally:
        admission.leave()
"""

from __future__ import annotations

import anyio

from gateway.clock import Clock
from gateway.exceptions import ConfigurationError, Overloaded

__all__ = ["OVERLOAD_RETRY_AFTER", "Admission"]

# What an overloaded caller is told to wait: long enough to let a wave of answers drain, short
# enough that a retrying client is served soon after it does.
OVERLOAD_RETRY_AFTER = 5.0


class Admission:
    """At most `limit` answers at once; a waiting one gives up after `queue_timeout` seconds."""

    def __init__(self, clock: Clock, *, limit: int, queue_timeout: float) -> None:
        if limit < 1 or queue_timeout < 0:
            raise ConfigurationError("the answer limit must be >= 1 and its queue timeout >= 0")
        self._clock = clock
        self._slots = anyio.Semaphore(limit)
        self.limit = limit
        self.queue_timeout = queue_timeout
        self.waiting = 0

    @property
    def running(self) -> int:
        return self.limit - self._slots.value

    async def enter(self) -> None:
        """Take a place, waiting up to `queue_timeout`; `Overloaded` when none came free."""
        try:
            self._slots.acquire_nowait()
            return
        except anyio.WouldBlock:
            pass
        admitted = False
        self.waiting += 1
        try:
            async with anyio.create_task_group() as group:

                async def give_up() -> None:
                    await self._clock.sleep(self.queue_timeout)
                    group.cancel_scope.cancel()

                group.start_soon(give_up)
                await self._slots.acquire()  # a place granted while cancelled is handed back by anyio
                admitted = True
                group.cancel_scope.cancel()
        except BaseException:
            if admitted:  # cancelled from outside while the timer task was being wound down
                self._slots.release()
            raise
        finally:
            self.waiting -= 1
        if not admitted:
            raise Overloaded(
                f"the gateway is answering {self.limit} questions at once and none finished "
                f"within {self.queue_timeout:g} s; retry in {OVERLOAD_RETRY_AFTER:g} s",
                retry_after=OVERLOAD_RETRY_AFTER,
            )

    def leave(self) -> None:
        self._slots.release()
