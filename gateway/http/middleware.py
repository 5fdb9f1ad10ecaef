"""Pure ASGI middleware: a body size cap and a body read deadline.

uvicorn has neither (security.md §4): the cap is counted on the bytes actually received, since
Content-Length may be absent or lie, and the deadline covers the whole body read, so a client
sending a byte a second is cut off with 408. Both raise from inside `receive`, so whoever reads
the body sees a `PayloadTooLarge` or `RequestTimeout` and maps it like any other error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.exceptions import PayloadTooLarge, RequestTimeout

__all__ = ["BODY_LIMITS", "BodyLimitMiddleware", "BodyLimits"]

BODY_LIMITS = "dgw.body_limits"


@dataclass(slots=True)
class BodyLimits:
    """The limits of one request; a handler may change `max_bytes` before it reads the body."""

    max_bytes: int
    deadline: float  # the event loop's time by which the whole body must have arrived


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # On the event loop's clock, not the injected one: this deadline cancels a read (an I/O
        # timeout), and only the loop can do that.
        loop = asyncio.get_running_loop()
        limits = BodyLimits(self.max_bytes, loop.time() + self.timeout)
        scope[BODY_LIMITS] = limits
        received = 0
        done = False

        async def limited_receive() -> Message:
            nonlocal received, done
            if done:
                # After the body, receive() only waits for the disconnect: no deadline there.
                return await receive()
            try:
                # asyncio's own timeout: a fraction of anyio.fail_after's cost on this hot path.
                async with asyncio.timeout_at(limits.deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout("the request body did not arrive in time") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limits.max_bytes:
                    raise PayloadTooLarge(f"the request body is larger than {limits.max_bytes} bytes")
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        await self.app(scope, limited_receive, send)
