"""Pure ASGI bearer-token check for everything under `/admin`, in constant time, rate-limited first.

Order matters (issue 11): a client that failed `MAX_FAILURES_PER_MINUTE` times this minute gets
429 *before* its token is looked at, so the limiter can't tell a guesser when a guess was right.
Failures are counted in the store, so every replica enforces the same limit. Every path under
`/admin` needs the token, unknown ones included (401, not 404, so the API's shape isn't probed
for free); only `GET /admin/api/openapi.json` is public.

Two kinds of token pass: the operator's (`GATEWAY_ADMIN_TOKEN`) and workspace tokens
(`gateway.records.admintokens`, looked up in the store on every request so a revocation holds at
once on every replica). The `Principal` goes into `scope["auth"]`, where the admin API scopes each
route to it and the access log names it (by token id, never the token).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admin.principal import OPERATOR, Principal
from gateway.exceptions import RateLimited
from gateway.records.admintokens import AdminTokenService
from gateway.security.ratelimit import RateLimiter

__all__ = ["MAX_FAILURES_PER_MINUTE", "AdminAuthMiddleware"]

MAX_FAILURES_PER_MINUTE = 30
PUBLIC = frozenset({("GET", "/api/openapi.json"), ("HEAD", "/api/openapi.json")})  # below the mount


class AdminAuthMiddleware:
    """Needs the lifespan state's `gateway` (its store-backed `limiter`, its `admin_tokens`) in `scope["state"]`."""

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
        gateway = scope["state"]["gateway"]
        limiter: RateLimiter = gateway.limiter
        client = scope["client"][0] if scope.get("client") else "-"
        key = f"admin-auth:{client}"
        try:
            await limiter.check(key, MAX_FAILURES_PER_MINUTE)
        except RateLimited as exc:
            await _deny(send, 429, "rate_limited", "too many failed admin logins; wait a minute", exc.retry_after)
            return
        principal = await self._principal(scope, gateway.admin_tokens)
        if principal is not None:
            scope["auth"] = principal
            await self.app(scope, receive, send)
            return
        await limiter.count(key)
        await _deny(send, 401, "unauthorized", "a valid admin token is required (Authorization: Bearer ...)")

    async def _principal(self, scope: Scope, tokens: AdminTokenService) -> Principal | None:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                credential = credential.strip()
                if scheme.lower() != b"bearer" or not credential:
                    return None
                if hmac.compare_digest(hashlib.sha256(credential).digest(), self._digest):
                    return OPERATOR
                record = await tokens.authenticate(credential.decode("latin-1"))
                return None if record is None else Principal.of_token(record)
        return None


async def _deny(send: Send, status: int, code: str, message: str, retry_after: float | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
