"""One platform write as the engine makes it: fenced, paced, and retried after a rate limit.

Before every call the fence runs (a run that lost its job's lease must not write: the fence
raises and the delivery stops). A call that raises `RateLimited` is made again after its
`retry_after`, waited on the injected clock, and the edit throttle is held back as long
(platforms.md §0.10, §1.6, §2.4).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.clock import Clock
from gateway.delivery.chat.adapter import Fence
from gateway.delivery.chat.text import EditThrottle
from gateway.exceptions import RateLimited

__all__ = ["Writes"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Writes:
    """Makes platform calls for one delivery."""

    def __init__(self, clock: Clock, throttle: EditThrottle, fence: Fence | None, *, attempts: int = 5) -> None:
        self._clock = clock
        self._throttle = throttle
        self._fence = fence
        self._attempts = max(1, attempts)
        self.count = 0  # calls that went through

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T:
        """Make `call`, after the fence; again after each rate limit, up to the attempts."""
        for attempt in range(1, self._attempts + 1):
            if self._fence is not None:
                await self._fence()
            try:
                result = await call()
            except RateLimited as exc:
                if attempt == self._attempts:
                    raise
                wait = max(0.0, exc.retry_after)
                logger.info("the chat platform asked to wait %.2f s (rate limited)", wait)
                self._throttle.backoff(wait)
                await self._clock.sleep(wait)
                continue
            self.count += 1
            return result
        raise AssertionError("unreachable")  # pragma: no cover
