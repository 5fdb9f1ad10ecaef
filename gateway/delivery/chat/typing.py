"""A "typing…" indicator that the platform shows for a few seconds per call, kept up by repeating it.

Telegram's `sendChatAction` shows "typing…" for 5 s (or until the bot's next message); Discord's
typing call lasts 10 s. `repeating(send, every=4.0, clock=clock)` is an adapter's `typing()`:
`send` at once, then every `every` seconds until the engine leaves the block (the first words
are shown). An indicator is never worth failing an answer: a call that fails ends the repeating,
logged, and the answer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.clock import Clock

__all__ = ["repeating"]

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def repeating(send: Callable[[], Awaitable[object]], *, every: float, clock: Clock) -> AsyncIterator[None]:
    """Call `send` now and every `every` seconds (background pauses on `clock`) while the block runs."""

    async def keep_up() -> None:
        while True:
            try:
                await send()
            except Exception as exc:  # the indicator's error sink: logged, never raised
                logger.info("the typing indicator failed and is not repeated: %s", exc.__class__.__name__)
                return
            await clock.idle(every)

    task = asyncio.create_task(keep_up(), name="typing-indicator")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
