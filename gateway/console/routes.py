"""The console's routes under `/console`: the page, its static files, log in, the session, log out.

Logging in trades the admin token, or a workspace token, for a session (gateway/console/sessions.py),
which acts as that token (a workspace token's session is re-checked on every request): the cookie is
HttpOnly, SameSite=Strict and Secure when the request came over https (uvicorn reads the scheme
from a trusted proxy's headers, see GATEWAY_TRUSTED_PROXIES). Failed logins count against the same
limiter as failed admin API calls. The page learns its CSRF token from `GET /console/session`,
which a page on another site can't read, with who is logged in (role, workspace, token id).
"""

from __future__ import annotations

import hmac
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, ValidationError
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.admin.auth import MAX_FAILURES_PER_MINUTE, failure_key, token_digest
from gateway.admin.principal import OPERATOR, Principal, token_principal
from gateway.console.headers import ConsoleHeaders
from gateway.console.origin import cross_site
from gateway.console.sessions import COOKIE, CSRF_HEADER, ConsoleSession, console_sessions
from gateway.exceptions import BadRequest, PermissionDenied, Unauthorized
from gateway.host.runtime import Gateway
from gateway.security.boundedjson import check_json_bounds

__all__ = ["STATIC", "console_mount"]

STATIC = Path(__file__).parent / "static"


class LoginIn(BaseModel):
    token: SecretStr = Field(min_length=1, max_length=1024)


def console_mount(admin_token: str) -> Mount:
    """`/console`, with the security headers on every answer."""
    page = (STATIC / "index.html").read_bytes()
    digest = token_digest(admin_token.encode())

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    async def login(request: Request) -> Response:
        _same_site(request)
        gateway: Gateway = request.state.gateway
        key = failure_key(request.scope)
        await gateway.limiter.check(key, MAX_FAILURES_PER_MINUTE)
        raw = await request.body()
        check_json_bounds(raw or b"{}")
        try:
            body = LoginIn.model_validate_json(raw or b"{}")
        except ValidationError:
            raise BadRequest('send {"token": "<the admin token or a workspace token>"}') from None
        principal = await _principal(gateway, body.token.get_secret_value().strip(), digest)
        if principal is None:
            await gateway.limiter.count(key)
            raise Unauthorized(
                "that is not the admin token (GATEWAY_ADMIN_TOKEN, or the one printed at first start) "
                "nor an active workspace token (gwt_…)"
            )
        session_id, session = await console_sessions(gateway, digest).start(principal)
        response = _session_answer(session)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int(gateway.settings.console_session_ttl),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def session(request: Request) -> Response:
        found = await console_sessions(request.state.gateway, digest).get(request.cookies.get(COOKIE, ""))
        if found is None:
            raise Unauthorized("not logged in")
        return _session_answer(found)

    async def logout(request: Request) -> Response:
        _same_site(request)
        sessions = console_sessions(request.state.gateway, digest)
        session_id = request.cookies.get(COOKIE, "")
        found = await sessions.get(session_id)
        if found is not None:
            if not found.csrf_matches(request.headers.get(CSRF_HEADER, "")):
                raise PermissionDenied("the CSRF token is missing or wrong; reload the console")
            await sessions.end(session_id)
        response = JSONResponse({"logged_out": True})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/login", login, methods=["POST"]),
        Route("/session", session, methods=["GET"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="console-static"),
    ]
    return Mount("/console", routes=routes, middleware=[Middleware(ConsoleHeaders), Middleware(GZipMiddleware)])


async def _principal(gateway: Gateway, token: str, admin_digest: bytes) -> Principal | None:
    """Who `token` is: the operator, an active workspace token of a workspace that holds it, or nobody."""
    if hmac.compare_digest(token_digest(token.encode()), admin_digest):
        return OPERATOR
    return await token_principal(await gateway.admin_tokens.authenticate(token), gateway.workspaces)


def _session_answer(session: ConsoleSession) -> JSONResponse:
    who = session.principal
    return JSONResponse(
        {
            "csrf_token": session.csrf,
            "expires_at": session.expires_at,
            "who": {"role": who.role, "workspace": who.workspace, "token_id": who.token_id, "operator": who.operator},
        }
    )


def _same_site(request: Request) -> None:
    if cross_site(request.headers.raw):
        raise PermissionDenied("cross-site requests are refused; use the console itself")
