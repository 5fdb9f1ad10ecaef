"""Pacing of message edits while an answer streams, on an injected clock.

Discord does not document edit limits (discord-api-docs#4413); about 5 edits per 5 s per channel
is the observed ceiling (discord.py#6073), so streaming edits go out at most once per `interval`.
A 429 pushes the next edit out by its `retry_after`. The first edit may go out at once.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["EditThrottle", "ThrottleClock"]


class ThrottleClock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for `seconds` on this clock."""
        ...


class EditThrottle:
    """Decides whether an edit may go out now.

    >>> throttle = EditThrottle(1.0, clock)
    >>> if throttle.ready():
    ...     await message.edit(content=text)
    ...     throttle.mark()
    """

    def __init__(self, interval: float, clock: ThrottleClock) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._clock = clock
        self._next: float | None = None  # None: nothing sent yet, the first edit goes at once

    def ready(self) -> bool:
        """True when an edit may be sent now."""
        return self.wait_time() == 0.0

    def wait_time(self) -> float:
        """Seconds until the next edit may be sent (0 when it may go now)."""
        if self._next is None:
            return 0.0
        return max(0.0, self._next - self._clock.monotonic())

    async def wait(self) -> None:
        """Sleep until an edit may be sent (the final edit of an answer waits rather than skips)."""
        delay = self.wait_time()
        if delay > 0:
            await self._clock.sleep(delay)

    def mark(self) -> None:
        """Record that an edit went out now."""
        self._push(self._clock.monotonic() + self.interval)

    def backoff(self, seconds: float) -> None:
        """Hold edits for `seconds` (a 429's `retry_after`), on top of the normal interval."""
        self._push(self._clock.monotonic() + max(0.0, seconds))

    def _push(self, moment: float) -> None:
        self._next = moment if self._next is None else max(self._next, moment)
