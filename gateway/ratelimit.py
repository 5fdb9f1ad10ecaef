"""Per-endpoint rate limits, shared by replicas through the store (fixed one-minute windows)."""

from __future__ import annotations

import math

from gateway.clock import Clock
from gateway.exceptions import RateLimited
from gateway.storage.base import Store

__all__ = ["RateLimiter"]

WINDOW = 60.0


class RateLimiter:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def hit(self, scope: str, limit_per_minute: int) -> None:
        """Count one request for `scope`; `RateLimited` with `retry_after` once the window is full."""
        if limit_per_minute <= 0:
            return
        now = self._clock.time()
        window = math.floor(now / WINDOW)
        count = await self._store.kv_incr(f"rl:{scope}:{window}", ttl=WINDOW * 2)
        if count > limit_per_minute:
            retry_after = max(1, math.ceil((window + 1) * WINDOW - now))
            raise RateLimited(f"more than {limit_per_minute} requests a minute", retry_after=retry_after)
