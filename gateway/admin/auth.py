"""Pure ASGI bearer-token check for everything under `/admin`, in constant time, rate-limited first.

Order matters (issue 11): a client that failed `MAX_FAILURES_PER_MINUTE` times this minute gets
429 *before* its token is looked at, so the limiter can't tell a guesser when a guess was right.
Failures are counted in the store, so every replica enforces the same limit. Every path under
`/admin` needs the token, unknown ones included (401, not 404, so the API's shape isn't probed
for free); only `GET /admin/api/openapi.json` is public.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.exceptions import RateLimited
from gateway.security.ratelimit import RateLimiter

__all__ = ["MAX_FAILURES_PER_MINUTE", "AdminAuthMiddleware"]

MAX_FAILURES_PER_MINUTE = 30
PUBLIC = frozenset({("GET", "/api/openapi.json"), ("HEAD", "/api/openapi.json")})  # below the mount


class AdminAuthMiddleware:
    """Needs the lifespan state's `gateway` (its store-backed `limiter`) in `scope["state"]`."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        # Compare digests: equal lengths whatever is sent, and the token itself is not kept around.
        self._digest = hashlib.sha256(token.encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        below = scope["path"].removeprefix(scope.get("root_path", ""))
        if (scope["method"], below) in PUBLIC:
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter = scope["state"]["gateway"].limiter
        client = scope["client"][0] if scope.get("client") else "-"
        key = f"admin-auth:{client}"
        try:
            await limiter.check(key, MAX_FAILURES_PER_MINUTE)
        except RateLimited as exc:
            await _deny(send, 429, "rate_limited", "too many failed admin logins; wait a minute", exc.retry_after)
            return
        if self._authorized(scope):
            await self.app(scope, receive, send)
            return
        await limiter.count(key)
        await _deny(send, 401, "unauthorized", "a valid admin token is required (Authorization: Bearer ...)")

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                if scheme.lower() != b"bearer" or not credential.strip():
                    return False
                return hmac.compare_digest(hashlib.sha256(credential.strip()).digest(), self._digest)
        return False


async def _deny(send: Send, status: int, code: str, message: str, retry_after: float | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
