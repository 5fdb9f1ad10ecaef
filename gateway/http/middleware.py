"""The gateway's one middleware layer (pure ASGI): access log, body limits, endpoint shortcut.

One layer rather than three, because each layer costs a coroutine frame and a wrapper per request
on the hot path (every webhook and chat ack):

- **Access log**: when `gateway.access` logs at INFO, the response status is captured on its way
  out and one redacted line is written per request (`gateway.http.accesslog`).
- **Body limits**: uvicorn has neither a body size cap nor a body read deadline (security.md §4).
  The cap is counted on the bytes actually received, since Content-Length may be absent or lie,
  and the deadline covers the whole body read, so a client sending a byte a second is cut off
  with 408. Both raise from inside `receive`, so whoever reads the body sees a `PayloadTooLarge`
  or `RequestTimeout` and maps it like any other error.
- **Endpoint shortcut**: endpoint requests (`/e/{token}[/{path}]`) go straight to the ingress.
  It answers every error itself in the surface's shape, so the router's walk over the routes and
  Starlette's per-route exception wrapper add nothing for them but time. Matching is the routes'
  own: `{token}` is one non-empty segment, `{path}` everything after the next slash; anything
  else goes on to the router.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.clock import Clock
from gateway.exceptions import PayloadTooLarge, RequestTimeout
from gateway.http.accesslog import access_log_enabled, log_access
from gateway.plugin import ALL_METHODS

__all__ = ["BODY_LIMITS", "BodyLimits", "EdgeMiddleware"]

BODY_LIMITS = "dgw.body_limits"


@dataclass(slots=True)
class BodyLimits:
    """The limits of one request; a handler may change `max_bytes` before it reads the body."""

    max_bytes: int
    deadline: float  # the event loop's time by which the whole body must have arrived


class EdgeMiddleware:
    """Args:
    app: the router (everything that is not an endpoint request).
    endpoint: the handler of endpoint requests (the ingress).
    clock: times the access log.
    max_bytes, timeout: the body cap (a handler may lower or raise it per request) and deadline.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoint: Callable[[Request], Awaitable[Response]],
        clock: Clock,
        max_bytes: int,
        timeout: float,
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.clock = clock
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        receive = self._limited(scope, receive)
        if not access_log_enabled():
            await self._route(scope, receive, send)
            return
        started = self.clock.monotonic()
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._route(scope, receive, send_logged)
        finally:
            log_access(scope, status, self.clock.monotonic() - started)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Behind a root_path the router's own prefix handling applies: no shortcut there.
        path: str = scope["path"]
        if path.startswith("/e/") and scope["method"] in ALL_METHODS and not scope.get("root_path"):
            token, slash, rest = path[3:].partition("/")
            if token:
                scope["path_params"] = {"token": token, "path": rest} if slash else {"token": token}
                response = await self.endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        """`receive`, counting the body against the cap and reading it by the deadline."""
        # On the event loop's clock, not the injected one: this deadline cancels a read (an I/O
        # timeout), and only the loop can do that.
        limits = BodyLimits(self.max_bytes, asyncio.get_running_loop().time() + self.timeout)
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

        return limited_receive
