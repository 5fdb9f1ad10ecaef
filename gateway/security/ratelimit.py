"""Rate limits shared by replicas through the store (fixed one-minute windows).

`hit` counts a request and refuses it past the limit (per-endpoint limits). `check` and `count`
split that in two for limits on failures (admin logins): refuse first, whatever the request
carries, and count only the attempts that failed.
"""

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
        if await self.count(scope) > limit_per_minute:
            raise self._limited(limit_per_minute)

    async def check(self, scope: str, limit_per_minute: int) -> None:
        """`RateLimited` if `scope` already reached the limit in this window; counts nothing."""
        if limit_per_minute <= 0:
            return
        raw = await self._store.kv_get(self._key(scope))
        if raw is not None and int(raw) >= limit_per_minute:
            raise self._limited(limit_per_minute)

    async def count(self, scope: str) -> int:
        """Count one event for `scope` in this window; the window's count so far."""
        return await self._store.kv_incr(self._key(scope), ttl=WINDOW * 2)

    def _key(self, scope: str) -> str:
        return f"rl:{scope}:{math.floor(self._clock.time() / WINDOW)}"

    def _limited(self, limit_per_minute: int) -> RateLimited:
        now = self._clock.time()
        retry_after = max(1, math.ceil((math.floor(now / WINDOW) + 1) * WINDOW - now))
        return RateLimited(f"more than {limit_per_minute} requests a minute", retry_after=retry_after)
