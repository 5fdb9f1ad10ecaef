"""Workspace admin tokens, on SQLite and a real Redis: hashed at rest, shown once, expiring,
revoked at once on every replica, named by id (never by value) in the access log."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.admin.auth import MAX_FAILURES_PER_MINUTE
from gateway.clock import FakeClock
from gateway.exceptions import BadRequest
from gateway.records.admintokens import AdminTokenIn, parse_duration
from gateway.storage.base import Store
from tests.support.gateway import make_settings, running_app
from tests.support.workspaces import OPERATOR, bearer, call, new_clock, open_test_store, stored_text

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> FakeClock:
    return new_clock()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_url_or_none(kind: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("redis_url")) if kind == "redis" else None


@pytest.fixture
async def store(kind: str, tmp_path: Path, clock: FakeClock, redis_url_or_none: str | None) -> AsyncIterator[Store]:
    async with open_test_store(kind, tmp_path, clock, redis_url_or_none) as opened:
        yield opened


async def test_a_token_is_shown_once_and_stored_only_as_its_hash(
    store: Store, clock: FakeClock, tmp_path: Path, kind: str, redis_url_or_none: str | None
) -> None:
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        assert (await call(running, "POST", "/workspaces", OPERATOR, json={"name": "team-a"})).status_code == 201
        response = await call(
            running, "POST", "/tokens", OPERATOR, json={"workspace": "team-a", "role": "viewer", "label": "ci"}
        )
        assert response.status_code == 201, response.text
        created = response.json()
        token = created["token"]
        assert token.startswith(f"gwt_{created['id']}_") and len(token) > 60
        assert created["role"] == "viewer" and created["state"] == "active" and created["label"] == "ci"
        # It works...
        me = await call(running, "GET", "/whoami", bearer(token))
        assert me.json() == {"role": "viewer", "workspace": "team-a", "token_id": created["id"]}
        # ... and is never shown again: lists carry the id only.
        listed = await call(running, "GET", "/tokens", OPERATOR)
        assert token not in listed.text and "digest" not in listed.text
        assert [t["id"] for t in listed.json()["tokens"]] == [created["id"]]
        assert (await call(running, "GET", "/tokens", OPERATOR, params={"workspace": "default"})).json() == {
            "tokens": []
        }
        # At rest: the SHA-256 of the token, never the token nor its secret part.
        raw = await stored_text(kind, tmp_path, redis_url_or_none)
        secret = token.split("_", 3)[3]  # gwt_at_<16 hex>_<43 characters that may hold "_" too>
        assert len(secret) == 43
        assert hashlib.sha256(token.encode()).hexdigest() in raw
        assert token not in raw and secret not in raw


async def test_expired_and_revoked_tokens_are_401(store: Store, clock: FakeClock, tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        body = {"workspace": "default", "expires_in_seconds": 3600}
        expiring = (await call(running, "POST", "/tokens", OPERATOR, json=body)).json()
        kept = (await call(running, "POST", "/tokens", OPERATOR, json={"workspace": "default"})).json()
        assert kept["expires_at"] is None
        assert (await call(running, "GET", "/apps", bearer(expiring["token"]))).status_code == 200
        clock.advance(3601)
        refused = await call(running, "GET", "/apps", bearer(expiring["token"]))
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        states = {t["id"]: t["state"] for t in (await call(running, "GET", "/tokens", OPERATOR)).json()["tokens"]}
        assert states == {expiring["id"]: "expired", kept["id"]: "active"}

        assert (await call(running, "GET", "/apps", bearer(kept["token"]))).status_code == 200
        revoked = await call(running, "DELETE", f"/tokens/{kept['id']}", OPERATOR)
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert (await call(running, "GET", "/apps", bearer(kept["token"]))).status_code == 401
        assert (await call(running, "DELETE", "/tokens/at_missing", OPERATOR)).status_code == 404


async def test_revocation_holds_at_once_on_another_replica(store: Store, clock: FakeClock, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with (
        running_app(settings, store=store, clock=clock, run_workers=False) as one,
        running_app(settings, store=store, clock=clock, run_workers=False) as two,
    ):
        created = (await call(one, "POST", "/tokens", OPERATOR, json={"workspace": "default"})).json()
        assert (await call(two, "GET", "/apps", bearer(created["token"]))).status_code == 200
        assert (await call(one, "DELETE", f"/tokens/{created['id']}", OPERATOR)).status_code == 200
        # No clock advance: the other replica does not serve the token from a cache.
        assert (await call(two, "GET", "/apps", bearer(created["token"]))).status_code == 401


async def test_a_token_left_over_from_a_deleted_workspace_opens_nothing_not_even_its_successor(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    """A token created while its workspace was being deleted (the two calls raced) outlives it: it must
    not open the workspace's name, nor a workspace created later under that name."""
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        _, stray = await running.gateway.admin_tokens.create(AdminTokenIn(workspace="team-b"))  # no team-b
        assert (await call(running, "GET", "/apps", bearer(stray))).status_code == 401
        body = {"name": "x", "base_url": "https://dify.test/v1", "api_key": "app-" + "K" * 28, "mode": "chat"}
        assert (await call(running, "POST", "/apps", bearer(stray), json=body)).status_code == 401
        assert await running.gateway.apps.all("team-b") == []

        assert (await call(running, "POST", "/workspaces", OPERATOR, json={"name": "team-a"})).status_code == 201
        token = (await call(running, "POST", "/tokens", OPERATOR, json={"workspace": "team-a"})).json()["token"]
        assert (await call(running, "GET", "/apps", bearer(token))).status_code == 200
        await store.doc_delete("workspaces", "team-a")  # deleted; the racing token was written after its tokens went
        assert (await call(running, "GET", "/apps", bearer(token))).status_code == 401
        clock.advance(1)
        assert (await call(running, "POST", "/workspaces", OPERATOR, json={"name": "team-a"})).status_code == 201
        assert (await call(running, "GET", "/apps", bearer(token))).status_code == 401  # the old team-a's token
        fresh = (await call(running, "POST", "/tokens", OPERATOR, json={"workspace": "team-a"})).json()["token"]
        assert (await call(running, "GET", "/apps", bearer(fresh))).status_code == 200


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="wrong-secret"),
        pytest.param(lambda t: t.replace("gwt_at_", "gwt_at_0"), id="mangled-id"),
        pytest.param(lambda t: t + "x", id="longer"),
        pytest.param(lambda t: "gwt_at_" + "0" * 16 + "_" + "A" * 43, id="unknown-id"),
    ],
)
async def test_a_forged_token_is_401(store: Store, clock: FakeClock, tmp_path: Path, forged: object) -> None:
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        token = (await call(running, "POST", "/tokens", OPERATOR, json={"workspace": "default"})).json()["token"]
        assert callable(forged)
        assert (await call(running, "GET", "/apps", bearer(forged(token)))).status_code == 401


async def test_failed_workspace_tokens_count_towards_the_login_limit(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        token = (await call(running, "POST", "/tokens", OPERATOR, json={"workspace": "default"})).json()["token"]
        for _ in range(MAX_FAILURES_PER_MINUTE):
            assert (await call(running, "GET", "/apps", bearer(token + "x"))).status_code == 401
        # Limited before the token is looked at: the right token gets 429 too, so guessing tells nothing.
        assert (await call(running, "GET", "/apps", bearer(token))).status_code == 429


async def test_the_access_log_names_the_token_by_id_never_by_value(
    store: Store, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        created = (await call(running, "POST", "/tokens", OPERATOR, json={"workspace": "default"})).json()
        with caplog.at_level(logging.INFO, logger="gateway.access"):
            assert (await call(running, "GET", "/apps", bearer(created["token"]))).status_code == 200
            assert (await call(running, "GET", "/apps", OPERATOR)).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert any(created["id"] in line and "/admin/api/apps" in line for line in lines), lines
    assert any(" operator " in line for line in lines), lines
    assert not any(created["token"] in line for line in lines)


@pytest.mark.parametrize(
    "body",
    [
        {"workspace": "default", "role": "owner"},
        {"workspace": "default", "expires_in_seconds": 0},
        {"workspace": "default", "expires_in_seconds": 1e12},
        {"workspace": "Bad"},
    ],
)
async def test_bad_token_requests_are_422(
    store: Store, clock: FakeClock, tmp_path: Path, body: dict[str, object]
) -> None:
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        assert (await call(running, "POST", "/tokens", OPERATOR, json=body)).status_code == 422


def test_durations() -> None:
    assert [parse_duration(d) for d in ("90", "90s", "15m", "12h", "30d", "2w")] == [
        90,
        90,
        900,
        43200,
        2592000,
        1209600,
    ]
    for bad in ("", "0", "1y", "-5m", "1.5h", "h"):
        with pytest.raises(BadRequest):
            parse_duration(bad)
