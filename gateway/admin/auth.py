"""Pure ASGI bearer-token check for everything under `/admin`, in constant time, rate-limited first.

Order matters (issue 11): a client that failed `MAX_FAILURES_PER_MINUTE` times this minute gets
429 *before* its token is looked at, so the limiter can't tell a guesser when a guess was right.
Failures are counted in the store, so every replica enforces the same limit. Every path under
`/admin` needs the token, unknown ones included (401, not 404, so the API's shape isn't probed
for free); only `GET /admin/api/openapi.json` is public.

Two kinds of token pass: the operator's (`GATEWAY_ADMIN_TOKEN`) and workspace tokens
(`gateway.records.admintokens`, looked up in the store on every request so a revocation holds at
once on every replica). A console session (cookie + CSRF header) stands for whoever logged in: the
operator, or a workspace token whose record is read again on each request (see
`gateway.console.sessions`). The `Principal` goes into `scope["auth"]`, where the admin API scopes
each route to it and the access log names it (by token id, never the token).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admin.principal import OPERATOR, Principal, token_principal
from gateway.console.origin import SAFE_METHODS, cross_site, header
from gateway.console.sessions import COOKIE, CSRF_HEADER, console_sessions
from gateway.exceptions import RateLimited
from gateway.records.admintokens import AdminTokenService
from gateway.records.workspaces import WorkspaceService
from gateway.security.ratelimit import RateLimiter

__all__ = ["MAX_FAILURES_PER_MINUTE", "AdminAuthMiddleware", "failure_key", "token_digest"]

MAX_FAILURES_PER_MINUTE = 30
PUBLIC = frozenset({("GET", "/api/openapi.json"), ("HEAD", "/api/openapi.json")})  # below the mount


class AdminAuthMiddleware:
    """Needs the lifespan state's `gateway` (its store-backed `limiter`, its `admin_tokens`) in `scope["state"]`."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        # Compare digests: equal lengths whatever is sent, and the token itself is not kept around.
        self._digest = token_digest(token.encode())

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
        key = failure_key(scope)
        try:
            await limiter.check(key, MAX_FAILURES_PER_MINUTE)
        except RateLimited as exc:
            await _deny(send, 429, "rate_limited", "too many failed admin logins; wait a minute", exc.retry_after)
            return
        if header(scope.get("headers", ()), b"authorization") is None and _cookie(scope) is not None:
            refused = await _session_refusal(scope, self._digest)
            if isinstance(refused, Principal):
                scope["auth"] = refused
                await self.app(scope, receive, send)
                return
            if refused[0] == 403:  # a live session, but no CSRF proof: not a guess at a credential
                await _deny(send, 403, "forbidden", refused[1])
                return
            await limiter.count(key)
            await _deny(send, 401, "unauthorized", refused[1])
            return
        principal = await self._principal(scope, gateway.admin_tokens, gateway.workspaces)
        if principal is not None:
            scope["auth"] = principal
            await self.app(scope, receive, send)
            return
        await limiter.count(key)
        await _deny(send, 401, "unauthorized", "a valid admin token is required (Authorization: Bearer ...)")

    async def _principal(
        self, scope: Scope, tokens: AdminTokenService, workspaces: WorkspaceService
    ) -> Principal | None:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                credential = credential.strip()
                if scheme.lower() != b"bearer" or not credential:
                    return None
                if hmac.compare_digest(token_digest(credential), self._digest):
                    return OPERATOR
                return await token_principal(await tokens.authenticate(credential.decode("latin-1")), workspaces)
        return None


def token_digest(token: bytes) -> bytes:
    """What a presented admin token is compared by: equal lengths whatever is sent."""
    return hashlib.sha256(token).digest()


def failure_key(scope: Scope) -> str:
    """The limiter scope of failed admin logins from this client (token or console login)."""
    client = scope["client"][0] if scope.get("client") else "-"
    return f"admin-auth:{client}"


def _cookie(scope: Scope) -> str | None:
    raw = header(scope.get("headers", ()), b"cookie")
    return (cookie_parser(raw).get(COOKIE) or None) if raw is not None else None


async def _session_refusal(scope: Scope, operator: bytes) -> Principal | tuple[int, str]:
    """Who logged in, when the console session cookie authorizes the request, else (status, message)."""
    gateway = scope["state"]["gateway"]
    if not gateway.settings.console:  # turned off: sessions opened before then are not honoured
        return 401, "the console is turned off (GATEWAY_CONSOLE=false); use an admin token"
    session = await console_sessions(gateway, operator).get(_cookie(scope) or "")
    if session is None:
        return 401, "the console session has ended; log in again"
    if scope["method"] in SAFE_METHODS:
        return session.principal
    headers = scope.get("headers", ())
    if cross_site(headers):
        return 403, "cross-site requests are refused; use the console itself"
    sent = header(headers, CSRF_HEADER.encode())
    if sent is None or not session.csrf_matches(sent):
        return 403, "the CSRF token is missing or wrong; reload the console"
    return session.principal


async def _deny(send: Send, status: int, code: str, message: str, retry_after: float | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
