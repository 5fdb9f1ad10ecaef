"""Per-key limits: requests per minute (fixed one-minute windows) and requests in flight.

Both counters live in the endpoint's storage, so replicas share them. The in-flight counter
expires `INFLIGHT_TTL` seconds after its first use: a replica that dies mid-request can hold a
slot at most that long.
"""

from __future__ import annotations

import anyio

from endpoints.openai.errors import OpenAIError
from endpoints.openai.keys import KeyInfo
from endpoints.openai.settings import OpenAISettings
from gateway.plugin import Context, Storage

__all__ = ["Slot", "admit"]

INFLIGHT_TTL = 900.0


class Slot:
    """A held in-flight slot; `release` is idempotent and survives cancellation."""

    def __init__(self, storage: Storage | None = None, counter: str = "") -> None:
        self._storage = storage
        self._counter = counter

    async def release(self) -> None:
        storage, self._storage = self._storage, None
        if storage is not None:
            with anyio.CancelScope(shield=True):
                if await storage.incr(self._counter, -1, ttl=INFLIGHT_TTL) < 0:
                    # The counter expired (and restarted) while this slot was held: undo, or it
                    # would go below zero and let one request more than the limit in.
                    await storage.incr(self._counter, 1, ttl=INFLIGHT_TTL)


async def admit(ctx: Context[OpenAISettings], key: KeyInfo, settings: OpenAISettings) -> Slot:
    """Count the request against `key`'s limits; 429 (with Retry-After) when over one."""
    limit = settings.key_requests_per_minute
    if limit is not None:
        now = ctx.clock.time()
        used = await ctx.storage.incr(f"rpm:{key.id}:{int(now // 60)}", ttl=120.0)
        if used > limit:
            raise OpenAIError(
                429,
                f"Rate limit reached: {limit} requests per minute for this key.",
                type="requests",
                code="rate_limit_exceeded",
                retry_after=60 - now % 60,
            )
    limit = settings.key_max_concurrent
    if limit is None:
        return Slot()
    counter = f"inflight:{key.id}"
    if await ctx.storage.incr(counter, ttl=INFLIGHT_TTL) > limit:
        await ctx.storage.incr(counter, -1, ttl=INFLIGHT_TTL)
        raise OpenAIError(
            429,
            f"Too many concurrent requests: at most {limit} for this key.",
            type="requests",
            code="rate_limit_exceeded",
            retry_after=1,
        )
    return Slot(ctx.storage, counter)
