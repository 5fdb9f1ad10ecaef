"""The console's security, in-process over httpx: sessions, cookie flags, CSRF and origin checks,
the CSP, the shared login limiter, and no secret in anything the console serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gateway.admin.auth import MAX_FAILURES_PER_MINUTE
from gateway.console.routes import STATIC
from gateway.testing.clock import VirtualClock
from tests.support.gateway import ADMIN_TOKEN, SECRET_KEY, Running, admin_headers, make_settings, running_app

pytestmark = pytest.mark.anyio

APP = {"name": "support", "base_url": "https://dify.test/v1", "api_key": "app-" + "K" * 28, "mode": "chat"}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        yield running


async def log_in(client: httpx.AsyncClient) -> str:
    """Log in; the session's CSRF token (the cookie stays in the client's jar)."""
    answered = await client.post("/console/login", json={"token": ADMIN_TOKEN})
    assert answered.status_code == 200, answered.text
    csrf: str = answered.json()["csrf_token"]
    return csrf


def same_origin(csrf: str) -> dict[str, str]:
    return {"x-csrf-token": csrf, "origin": "http://gw.test", "sec-fetch-site": "same-origin"}


async def test_the_session_cookie_is_httponly_strict_and_holds_no_token(running: Running) -> None:
    answered = await running.client.post("/console/login", json={"token": ADMIN_TOKEN})
    cookie = answered.headers["set-cookie"]
    assert cookie.startswith("gw_console=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert ADMIN_TOKEN not in cookie and ADMIN_TOKEN not in answered.text


async def test_the_cookie_is_secure_over_https(running: Running) -> None:
    transport = httpx.ASGITransport(app=running.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://gw.test") as client:
        answered = await client.post("/console/login", json={"token": ADMIN_TOKEN})
    assert answered.status_code == 200
    assert "Secure" in answered.headers["set-cookie"]


async def test_a_session_calls_the_admin_api_and_proves_each_change(running: Running) -> None:
    client = running.client
    csrf = await log_in(client)
    assert (await client.get("/admin/api/apps")).json() == {"apps": []}
    added = await client.post("/admin/api/apps", json=APP, headers=same_origin(csrf))
    assert added.status_code == 201, added.text
    missing = await client.post("/admin/api/apps/support/check", headers={"origin": "http://gw.test"})
    assert missing.status_code == 403
    assert "CSRF" in missing.json()["error"]["message"]
    wrong = await client.delete("/admin/api/apps/support", headers=same_origin("x" + csrf[1:]))
    assert wrong.status_code == 403
    assert (await client.get("/admin/api/apps/support")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "http://gw.test", "sec-fetch-site": "cross-site"},
    ],
)
async def test_a_cross_site_post_is_refused_even_with_the_csrf_token(running: Running, headers: dict[str, str]) -> None:
    client = running.client
    csrf = await log_in(client)
    refused = await client.post("/admin/api/apps", json=APP, headers={"x-csrf-token": csrf, **headers})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert (await client.get("/admin/api/apps")).json() == {"apps": []}
    login = await client.post("/console/login", json={"token": ADMIN_TOKEN}, headers=headers)
    assert login.status_code == 403  # no login CSRF either
    logout = await client.post("/console/logout", headers={"x-csrf-token": csrf, **headers})
    assert logout.status_code == 403
    assert (await client.get("/console/session")).status_code == 200


async def test_a_logged_out_session_is_dead_on_the_server(running: Running) -> None:
    client = running.client
    csrf = await log_in(client)
    cookie = client.cookies["gw_console"]
    assert (await client.post("/console/logout", headers=same_origin(csrf))).status_code == 200
    # Replay the old cookie by hand: the browser dropped it, the server must not accept it either.
    replayed = {"cookie": f"gw_console={cookie}"}
    client.cookies.clear()
    assert (await client.get("/admin/api/apps", headers=replayed)).status_code == 401
    assert (await client.get("/console/session", headers=replayed)).status_code == 401
    stale = await client.post("/admin/api/apps", json=APP, headers={**replayed, **same_origin(csrf)})
    assert stale.status_code == 401


async def test_a_session_expires(tmp_path: Path) -> None:
    clock = VirtualClock()
    settings = make_settings(tmp_path, console_session_ttl=600.0)
    async with running_app(settings, run_workers=False, clock=clock) as running:
        await log_in(running.client)
        assert (await running.client.get("/admin/api/apps")).status_code == 200
        clock.advance(601)
        assert (await running.client.get("/admin/api/apps")).status_code == 401
        assert (await running.client.get("/console/session")).status_code == 401


async def test_failed_console_logins_share_the_admin_limiter(running: Running) -> None:
    client = running.client
    for _ in range(MAX_FAILURES_PER_MINUTE):
        failed = await client.post("/console/login", json={"token": "guess-" + "x" * 40})
        assert failed.status_code == 401
        assert "not the admin token" in failed.json()["error"]["message"]
    limited = await client.post("/console/login", json={"token": ADMIN_TOKEN})
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert (await client.get("/admin/api/apps", headers=admin_headers())).status_code == 429


async def test_a_bad_login_body_is_a_clear_400(running: Running) -> None:
    for body in (b"", b"[]", b'{"token": 5}', b"{" * 5000):
        answered = await running.client.post("/console/login", content=body)
        assert answered.status_code in (400, 413), answered.text
        assert answered.json()["error"]["message"]


async def test_every_console_answer_has_a_strict_csp(running: Running) -> None:
    for path in ["/console/", "/console/static/js/main.js", "/console/static/console.css", "/console/session"]:
        answered = await running.client.get(path)
        csp = answered.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answered.headers["x-content-type-options"] == "nosniff"
    page = await running.client.get("/console/")
    assert page.headers["cache-control"] == "no-store"
    script = await running.client.get("/console/static/js/main.js", headers={"accept-encoding": "gzip"})
    assert script.headers["cache-control"] == "no-cache"  # revalidated by ETag: an upgrade shows at once
    assert script.headers["content-encoding"] == "gzip"
    assert "<script>" not in page.text and " style=" not in page.text and " on" not in page.text.split("<body")[1]


async def test_the_root_leads_to_the_console(running: Running) -> None:
    answered = await running.client.get("/")
    assert answered.status_code == 302 and answered.headers["location"] == "/console/"


async def test_console_off(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, console=False), run_workers=False) as running:
        assert (await running.client.get("/console/")).status_code == 404
        assert (await running.client.get("/")).status_code == 404
        assert (await running.client.post("/console/login", json={"token": ADMIN_TOKEN})).status_code == 404


async def test_no_secret_in_anything_the_console_serves(running: Running) -> None:
    """Every shipped file, fetched as a browser would: no token, key or secret baked in."""
    secrets = [ADMIN_TOKEN, SECRET_KEY, APP["api_key"]]
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    assert any(p.suffix == ".js" for p in files)
    for path in ["/console/", *(f"/console/static/{p.relative_to(STATIC).as_posix()}" for p in files)]:
        answered = await running.client.get(path)
        assert answered.status_code == 200, path
        assert not any(secret in answered.text for secret in secrets), path


async def test_a_bearer_token_is_judged_alone_whatever_cookie_comes_with_it(running: Running) -> None:
    client = running.client
    client.cookies.set("gw_console", "not-a-session")
    assert (await client.get("/admin/api/apps", headers=admin_headers())).status_code == 200
    await log_in(client)  # a live session does not rescue a wrong token
    wrong = await client.get("/admin/api/apps", headers={"authorization": "Bearer wrong-" + "x" * 40})
    assert wrong.status_code == 401


async def test_sessions_end_when_the_admin_token_changes_or_the_console_is_turned_off(tmp_path: Path) -> None:
    """A session stands for the admin token that opened it: a leaked token that was replaced must
    not live on as a cookie, nor a session opened before the console was turned off."""
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        await log_in(running.client)
        replayed = {"cookie": f"gw_console={running.client.cookies['gw_console']}"}
    async with running_app(make_settings(tmp_path), run_workers=False) as running:  # a restart, same token
        assert (await running.client.get("/admin/api/apps", headers=replayed)).status_code == 200
    rotated = make_settings(tmp_path, admin_token=SecretStr("admin-" + "r" * 40))
    async with running_app(rotated, run_workers=False) as running:
        assert (await running.client.get("/admin/api/apps", headers=replayed)).status_code == 401
        assert (await running.client.get("/console/session", headers=replayed)).status_code == 401
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        await log_in(running.client)
        replayed = {"cookie": f"gw_console={running.client.cookies['gw_console']}"}
    async with running_app(make_settings(tmp_path, console=False), run_workers=False) as running:
        assert (await running.client.get("/admin/api/apps", headers=replayed)).status_code == 401
