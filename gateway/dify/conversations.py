"""Conversation memory and per-conversation ordering, shared by replicas through the store.

* `ConversationMap`: a plugin's conversation key (e.g. `slack:T1:C1:1700.1`) and the person's
  Dify `user` → the Dify conversation id. Keyed by both, so a conversation is never continued
  under another user (Dify scopes conversations by user, dify-api.md §6). Entries expire after
  an idle TTL; `reset` drops every user's entry of a key.
* `ConversationLocks`: at most one answer per conversation at a time; later ones wait and run
  in arrival order (Dify rejects concurrent requests into one conversation, dify#16450).

The lock is the store's lease lock (gateway/storage/lock.py) plus a ticket queue: each waiter
draws a ticket, and the lock goes to the ticket being served (the first ticket, 1, while nothing
was served yet). A holder that dies stops renewing its lease; once it has expired and stayed free
for `stale_after` seconds, the next ticket takes over.

A key its caller has just made up (a random id nobody else can know yet) has no queue to join:
`hold_new_soon` takes the lock at once, as ticket 0, with one store write instead of a ticket, a turn
check and a serving mark. Whoever learns the key while that answer runs draws ticket 1 and
waits for the lock like any later arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.clock import Clock
from gateway.storage.base import Store
from gateway.storage.lock import LeaseLock

__all__ = ["ConversationLocks", "ConversationMap"]

logger = logging.getLogger(__name__)

QUEUE_TTL = 24 * 3600.0  # a conversation's ticket counters outlive any wait


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class ConversationMap:
    def __init__(self, store: Store, scope: str, *, idle_ttl: float = 7 * 24 * 3600.0) -> None:
        self._store = store
        self._scope = scope  # e.g. "ep_123:support": an endpoint and an app
        self._ttl = idle_ttl

    def _prefix(self, key: str) -> str:
        return f"conv:{self._scope}:{_h(key)}:"

    async def get(self, key: str, user: str) -> str | None:
        raw = await self._store.kv_get(self._prefix(key) + _h(user))
        if raw is None:
            return None
        data = json.loads(raw)
        # Belt and braces: never hand out a conversation recorded for someone else.
        return str(data["conversation_id"]) if data.get("user") == user else None

    async def put(self, key: str, user: str, conversation_id: str) -> None:
        value = json.dumps({"conversation_id": conversation_id, "user": user})
        await self._store.kv_set(self._prefix(key) + _h(user), value, ttl=self._ttl)

    async def forget(self, key: str, user: str) -> None:
        await self._store.kv_delete(self._prefix(key) + _h(user))

    async def reset(self, key: str) -> int:
        """Drop the key's conversations (every user's); the next message starts afresh."""
        return await self._store.kv_delete_prefix(self._prefix(key))


class ConversationLocks:
    """Ordered, crash-safe mutual exclusion per conversation key, across processes."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        lease: float = 30.0,
        poll: float = 0.05,
        stale_after: float = 1.0,
        max_wait: float = 600.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lease = lease
        self._poll = poll
        self._stale_after = stale_after
        self._max_wait = max_wait

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Wait for the key's turn, hold it while the block runs (renewing the lease), then pass it on."""
        base = f"clock:{_h(key)}"
        ticket = await self._store.kv_incr(base + ":tail", ttl=QUEUE_TTL)
        lock = LeaseLock(self._store, base + ":lock", ttl=self._lease, owner=str(ticket))
        taken = await self._acquire(base, ticket, lock)
        async with lock.kept(self._clock) if taken else contextlib.nullcontext(lock):
            try:
                yield
            finally:
                await asyncio.shield(self._pass_turn(base, ticket))

    @contextlib.asynccontextmanager
    async def hold_new_soon(self, key: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """`hold` for a key nobody else can know yet: the lock is taken at once as ticket 0 (the
        first ticket drawn later, 1, is served next without a mark), the write started in the
        background. The block runs at once and must `await taken()` (what this yields) before
        anything shows the key; from then on the lock is held until the block ends. Should the
        lock be held after all, `taken()` waits its turn as `hold` does. It raises what taking
        the lock raised (a store error); a block that never awaited it leaves the lock free.

        For work that may start before the lock is held (opening the Dify stream of a new
        conversation): nobody can name the key until the block shows it, so nobody can be
        ordered behind it before `taken()` returns."""
        lock = LeaseLock(self._store, f"clock:{_h(key)}:lock", ttl=self._lease, owner="0")
        taking = asyncio.ensure_future(lock.acquire())
        waited = False
        async with contextlib.AsyncExitStack() as held:

            async def taken() -> None:
                nonlocal waited
                if waited:
                    return
                if await taking:
                    await held.enter_async_context(lock.kept(self._clock))
                else:  # held after all: wait for its turn
                    await held.enter_async_context(self.hold(key))
                waited = True

            try:
                yield taken
            finally:
                if not waited:
                    await asyncio.shield(self._let_go(taking, lock))

    @staticmethod
    async def _let_go(taking: asyncio.Future[bool], lock: LeaseLock) -> None:
        """Release the lock of a block that ended before it waited for it (or while it did)."""
        try:
            if not await taking:
                return
        except Exception:  # never taken; a block that waited was handed the error
            logger.debug("taking an unused conversation lock failed", exc_info=True)
            return
        try:
            await lock.release()
        except Exception:  # the TTL frees it instead; nobody can know the key anyway
            logger.exception("releasing an unused conversation lock failed; it expires in %g s", lock.ttl)

    async def _acquire(self, base: str, ticket: int, lock: LeaseLock) -> bool:
        """Wait for the ticket's turn and take the lock; False when it waited `max_wait` in vain."""
        free_since: float | None = None
        started = self._clock.monotonic()
        while True:
            serving_raw = await self._store.kv_get(base + ":serving")
            # Nothing served yet: the first ticket is (a key's first holder may be `hold_new_soon`'s 0).
            serving = int(serving_raw) if serving_raw else 1
            holder = await lock.holder()
            now = self._clock.monotonic()
            if holder is None:
                free_since = free_since if free_since is not None else now
                # My turn; or an earlier ticket never took its turn (its waiter died), or the
                # counters were reset under us: then arrival order can't be kept anyway.
                if ticket <= serving or now - free_since >= self._stale_after:
                    if await lock.acquire():
                        if serving_raw != lock.owner:  # only when a turn was skipped or the queue is new
                            await self._store.kv_set(base + ":serving", lock.owner, ttl=QUEUE_TTL)
                        return True
            else:
                free_since = None
            if now - started > self._max_wait:
                logger.warning("waited %.0f s for a conversation lock; going ahead", now - started)
                return False
            await self._clock.sleep(self._poll)

    async def _pass_turn(self, base: str, ticket: int) -> None:
        """The next ticket is served (the lock itself is released after this, by its owner)."""
        try:
            await self._store.kv_set(base + ":serving", str(ticket + 1), ttl=QUEUE_TTL)
        except Exception:
            logger.exception("passing on a conversation's turn failed; the next waiter takes over when it is stale")
