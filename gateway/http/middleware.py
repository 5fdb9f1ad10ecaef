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

The layer sits outside Starlette's own (`gateway.http.app.GatewayApp`): the rest of the app keeps
Starlette's error layer, and endpoint requests skip it and its send wrapper, since the ingress has
already turned every error into the surface's answer (anything else is mapped here, the same way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.clock import Clock
from gateway.exceptions import PayloadTooLarge, RequestTimeout
from gateway.http.accesslog import access_log_enabled, log_access
from gateway.http.errors import handle_error
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
        limited = self._limited(scope, receive)
        if not access_log_enabled():
            try:
                await self._route(scope, limited, send)
            finally:
                limited.close()
            return
        started = self.clock.monotonic()
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._route(scope, limited, send_logged)
        finally:
            limited.close()
            log_access(scope, status, self.clock.monotonic() - started)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Behind a root_path the router's own prefix handling applies: no shortcut there.
        path: str = scope["path"]
        if path.startswith("/e/") and scope["method"] in ALL_METHODS and not scope.get("root_path"):
            token, slash, rest = path[3:].partition("/")
            if token:
                scope["path_params"] = {"token": token, "path": rest} if slash else {"token": token}
                try:
                    response = await self.endpoint(Request(scope, receive, send))
                except Exception as exc:  # the ingress maps its own errors; this is the last resort
                    response = handle_error(exc, "an endpoint request")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _limited(self, scope: Scope, receive: Receive) -> _BodyReceive:
        """`receive`, counting the body against the cap and reading it by the deadline."""
        # On the event loop's clock, not the injected one: this deadline cancels a read (an I/O
        # timeout), and only the loop can do that.
        loop = asyncio.get_running_loop()
        limits = BodyLimits(self.max_bytes, loop.time() + self.timeout)
        scope[BODY_LIMITS] = limits
        return _BodyReceive(receive, limits, loop)


class _BodyReceive:
    """`receive` under the body limits: the bytes counted against the cap, the reads by the deadline.

    One timer per request, armed by the first read of the body and disarmed once the body is in
    (or the request ends), rather than a timeout scope per read: on the ack path the body is one
    read that uvicorn answers at once. When the deadline passes during a read, that read's task is
    cancelled and the read raises `RequestTimeout`; a read that starts after the deadline runs
    under `asyncio.timeout_at` (it may still return a message that is already there, as before).
    After the body, `receive` only waits for the disconnect: no deadline there.
    """

    __slots__ = ("_cancelled_at", "_done", "_expired", "_loop", "_reader", "_receive", "_received", "_timer", "limits")

    def __init__(self, receive: Receive, limits: BodyLimits, loop: asyncio.AbstractEventLoop) -> None:
        self._receive = receive
        self._loop = loop
        self.limits = limits
        self._received = 0
        self._done = False
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False
        self._reader: asyncio.Task[Any] | None = None  # the task of the read under way, if any
        self._cancelled_at: int | None = None  # the reader's cancel count before the deadline cancelled it

    async def __call__(self) -> Message:
        if self._done:
            return await self._receive()
        if self._expired:
            try:
                async with asyncio.timeout_at(self.limits.deadline):
                    message = await self._receive()
            except TimeoutError:
                raise RequestTimeout("the request body did not arrive in time") from None
            return self._counted(message)
        if self._timer is None:
            self._timer = self._loop.call_at(self.limits.deadline, self._expire)
        self._reader = reader = asyncio.current_task()
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            cancelled_at = self._cancelled_at
            if cancelled_at is not None and reader is not None and reader.uncancel() <= cancelled_at:
                raise RequestTimeout("the request body did not arrive in time") from None
            raise
        finally:
            self._reader = None
        return self._counted(message)

    def _counted(self, message: Message) -> Message:
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self.limits.max_bytes:
                raise PayloadTooLarge(f"the request body is larger than {self.limits.max_bytes} bytes")
            if not message.get("more_body", False):
                self.close()
        else:
            self.close()
        return message

    def _expire(self) -> None:
        self._timer = None
        self._expired = True
        reader = self._reader
        if reader is not None and self._cancelled_at is None:
            self._cancelled_at = reader.cancelling()
            reader.cancel()

    def close(self) -> None:
        """The body is in (or the request is over): no deadline from here on."""
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
