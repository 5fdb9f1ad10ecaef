"""Pure ASGI bearer-token check for the admin API, in constant time, with failures rate-limited."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["AdminAuthMiddleware"]

MAX_FAILURES_PER_MINUTE = 30
PUBLIC_PATHS = frozenset({"/openapi.json"})


class AdminAuthMiddleware:
    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        # Compare digests: equal lengths whatever is sent, and the token itself is not kept around.
        self._digest = hashlib.sha256(token.encode()).digest()
        self._failures: dict[str, list[float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").removeprefix(scope.get("root_path", "")) in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        # The right token always gets in: the limit only slows guessing, so a flood of bad
        # attempts from a shared address (a proxy) can't lock the operators out.
        if self._authorized(scope):
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "-"
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, ()) if now - t < 60]
        if len(recent) >= MAX_FAILURES_PER_MINUTE:
            await _deny(send, 429, "rate_limited", "too many failed admin logins; wait a minute", retry_after=60)
            return
        recent.append(now)
        self._failures[client] = recent
        if len(self._failures) > 10_000:
            self._failures.clear()
        await _deny(send, 401, "unauthorized", "a valid admin token is required (Authorization: Bearer ...)")

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                if scheme.lower() != b"bearer" or not credential.strip():
                    return False
                return hmac.compare_digest(hashlib.sha256(credential.strip()).digest(), self._digest)
        return False


async def _deny(send: Send, status: int, code: str, message: str, retry_after: int | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
