"""Pure ASGI access log that never writes an endpoint's URL token (security.md §5).

uvicorn's own access log prints the full path, and the path of `/e/{token}` is a live secret; the
gateway turns uvicorn's off and logs `/e/<sha256 prefix>…` instead.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.admin.principal import Principal
from gateway.clock import Clock
from gateway.security.tokens import redact_path

__all__ = ["AccessLogMiddleware"]

logger = logging.getLogger("gateway.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, *, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = self.clock.monotonic()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client")
            auth = scope.get("auth")  # the admin API's Principal: "operator" or a token id, never a token
            logger.info(
                '%s %s "%s %s" %d %.1fms',
                client[0] if client else "-",
                auth.log_id if isinstance(auth, Principal) else "-",
                scope["method"],
                redact_path(scope["path"]),
                status,
                (self.clock.monotonic() - started) * 1000,
            )
