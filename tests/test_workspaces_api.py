"""Workspaces in the admin API, on SQLite and a real Redis: every route sees only the caller's
workspace (another workspace's ids answer 404), a viewer's every write is 403, and apps are
named per workspace.

The routes are enumerated from what the app mounts under /admin/api, so a new route is covered
(or fails here, asking for a value for its path parameter) without editing this file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount, Route

from gateway.admin.api import ADMIN_ROUTES
from gateway.clock import FakeClock
from gateway.http.app import create_app
from gateway.storage.base import Store
from tests.support.gateway import Running, make_settings
from tests.support.workspaces import DIFY_A, DIFY_B, OPERATOR, Team, bearer, call, new_clock, open_test_store, two_teams

pytestmark = pytest.mark.anyio

OPERATOR_ONLY = {(r.method, r.path) for r in ADMIN_ROUTES if r.operator_only}


def _mounted_routes() -> list[tuple[str, str]]:
    """(method, path) of every admin API route, as the app built by `create_app` mounts them."""
    app = create_app(make_settings(Path("/nonexistent")), run_workers=False)
    admin = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/admin")
    api = next(r for r in admin.routes if isinstance(r, Mount) and r.path == "/api")
    found = []
    for route in api.routes:
        assert isinstance(route, Route)
        if route.path == "/openapi.json":
            continue  # public, and says nothing about any workspace
        found += [(method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


ROUTES = _mounted_routes()
SCOPED = [r for r in ROUTES if r not in OPERATOR_ONLY]
WRITES = [r for r in ROUTES if r[0] != "GET"]


def _ids(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    async with open_test_store(request.param, tmp_path, clock, redis_url) as opened:
        yield opened


@pytest.fixture
def clock() -> FakeClock:
    return new_clock()


@pytest.fixture
async def teams(store: Store, clock: FakeClock, tmp_path: Path) -> AsyncIterator[tuple[Running, Team, Team]]:
    async with two_teams(store, clock, tmp_path) as seeded:
        running, a, b = seeded
        for team in (a, b):  # a snapshot in each workspace, for the snapshot routes
            query = {"workspace": team.workspace}
            saved = await call(
                running, "POST", "/snapshots", OPERATOR, json={"tag": f"snap-{team.workspace}"}, params=query
            )
            assert saved.status_code == 201, saved.text
        yield seeded


def fill(path: str, team: Team) -> str:
    """`path` with its parameters naming `team`'s things."""
    values = {"name": team.apps[-1], "action": "anything"}  # apps[-1]: a name only this team has
    values |= {"tag": f"snap-{team.workspace}", "other": "current"}  # a snapshot `teams` saved in each workspace
    if path.startswith("/endpoints/"):
        values["id"] = team.endpoint
    elif path.startswith("/jobs/"):
        values["id"] = team.job
    elif path.startswith("/tokens/"):
        values["id"] = "at_" + "0" * 16
    elif path.startswith("/workspaces/"):
        values["name"] = team.workspace
    elif path.startswith("/budgets/"):
        values["id"] = team.extra["budget"]
    elif path.startswith("/plugins/"):
        values["author"] = "nobody"  # installed Dify plugins serve every workspace: none is installed here

    def value(match: re.Match[str]) -> str:
        name = match[1]
        assert name in values, f"the workspace tests need a value for {{{name}}} in {path}: add it to fill()"
        return values[name]

    return re.sub(r"\{(\w+)\}", value, path)


BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/apps"): {"name": "newapp", "base_url": DIFY_A, "api_key": "app-x", "mode": "chat"},
    ("POST", "/endpoints"): {"plugin": "echo"},
    ("POST", "/apps/{name}/keys"): {"api_key": "app-x"},
    ("POST", "/snapshots"): {"tag": "nightly"},
    ("POST", "/snapshots/restore"): {"tag": "nightly"},
    ("POST", "/config/apply"): {"yaml": "version: 1\n"},
    ("PUT", "/budgets"): {"scope": "workspace", "tokens": 5},
}


async def _snapshot(running: Running, team: Team) -> dict[str, Any]:
    """What the operator sees of `team`'s workspace: must not change when others poke at it."""
    query = {"workspace": team.workspace}
    apps = (await call(running, "GET", "/apps", OPERATOR, params=query)).json()
    endpoints = (await call(running, "GET", "/endpoints", OPERATOR, params=query)).json()
    job = (await call(running, "GET", f"/jobs/{team.job}", OPERATOR, params=query)).json()
    return {"apps": apps, "endpoints": endpoints, "job": job}


def test_the_routes_are_enumerated() -> None:
    assert ("PATCH", "/endpoints/{id}") in SCOPED and ("POST", "/jobs/{id}/replay") in SCOPED
    assert {(r.method, r.path) for r in ADMIN_ROUTES} == set(ROUTES)


@pytest.mark.parametrize("route", SCOPED, ids=_ids)
async def test_another_workspaces_ids_answer_404(teams: tuple[Running, Team, Team], route: tuple[str, str]) -> None:
    running, a, b = teams
    method, path = route
    before = await _snapshot(running, b)
    body = BODIES.get(route, {} if method != "GET" else None)
    if "{" in path:
        # team-a's admin and the operator acting on team-a, with team-b's ids.
        for headers, query in ((bearer(a.admin_token), {}), (OPERATOR, {"workspace": a.workspace})):
            response = await call(running, method, fill(path, b), headers, json=body, params=query)
            assert response.status_code == 404, (headers, response.text)
            assert response.json()["error"]["code"] == "not_found"
    # team-a's admin naming team-b's workspace: 404 too (for routes without ids, the only way in).
    response = await call(
        running, method, fill(path, b), bearer(a.admin_token), json=body, params={"workspace": "team-b"}
    )
    assert response.status_code == 404, response.text
    # ... and naming a workspace that doesn't exist answers the same.
    response = await call(
        running, method, fill(path, b), bearer(a.admin_token), json=body, params={"workspace": "nope"}
    )
    assert response.status_code == 404, response.text
    assert await _snapshot(running, b) == before


@pytest.mark.parametrize("route", WRITES, ids=_ids)
async def test_a_viewers_every_write_is_403(teams: tuple[Running, Team, Team], route: tuple[str, str]) -> None:
    running, a, _ = teams
    method, path = route
    before = await _snapshot(running, a)
    response = await call(running, method, fill(path, a), bearer(a.viewer_token), json=BODIES.get(route, {}))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "permission_denied"
    assert await _snapshot(running, a) == before


@pytest.mark.parametrize("route", sorted(OPERATOR_ONLY), ids=_ids)
async def test_operator_routes_are_403_to_workspace_admins(
    teams: tuple[Running, Team, Team], route: tuple[str, str]
) -> None:
    running, a, _ = teams
    method, path = route
    response = await call(
        running, method, path.replace("{name}", "team-b").replace("{id}", "at_0"), bearer(a.admin_token), json={}
    )
    assert response.status_code == 403, response.text


# (A Dify plugin's page is the same for every workspace; none is installed in these tests.)
@pytest.mark.parametrize("route", [r for r in SCOPED if r[0] == "GET" and not r[1].startswith("/plugins/")], ids=_ids)
async def test_a_viewer_reads_its_own_workspace(teams: tuple[Running, Team, Team], route: tuple[str, str]) -> None:
    running, a, _ = teams
    response = await call(running, "GET", fill(route[1], a), bearer(a.viewer_token))
    assert response.status_code == 200, response.text


async def test_lists_hold_only_the_callers_workspace(teams: tuple[Running, Team, Team]) -> None:
    running, a, b = teams
    for team in (a, b):
        headers = bearer(team.admin_token)
        apps = (await call(running, "GET", "/apps", headers)).json()["apps"]
        assert sorted(x["name"] for x in apps) == sorted(team.apps)
        assert {x["workspace"] for x in apps} == {team.workspace}
        endpoints = (await call(running, "GET", "/endpoints", headers)).json()["endpoints"]
        assert [e["id"] for e in endpoints] == [team.endpoint]
        jobs = (await call(running, "GET", "/jobs", headers)).json()["jobs"]
        assert [j["id"] for j in jobs] == [team.job]
        me = (await call(running, "GET", "/whoami", headers)).json()
        assert me["workspace"] == team.workspace and me["role"] == "admin" and me["token_id"]
    # The operator sees the workspace it names, and `default` (empty here) without one.
    assert (await call(running, "GET", "/apps", OPERATOR)).json()["apps"] == []
    listed = (await call(running, "GET", "/endpoints", OPERATOR, params={"workspace": "team-b"})).json()
    assert [e["id"] for e in listed["endpoints"]] == [b.endpoint]


async def test_two_workspaces_both_have_an_app_named_support(teams: tuple[Running, Team, Team]) -> None:
    running, a, b = teams
    shown = {}
    for team in (a, b):
        response = await call(running, "GET", "/apps/support", bearer(team.admin_token))
        assert response.status_code == 200
        shown[team.workspace] = response.json()["base_url"]
    assert shown == {"team-a": DIFY_A, "team-b": DIFY_B}
    # Each endpoint answers with its own workspace's `support`; a third name taken twice is refused once.
    gw = running.gateway
    for team, base in ((a, DIFY_A), (b, DIFY_B)):
        record, _ = await gw.endpoints.create("webhook", ["support"], {}, workspace=team.workspace)
        context = await gw.contexts.build(record, gw.registry.require("webhook"))
        assert context.apps.get("support").base_url == base
    body = {"name": "support", "base_url": DIFY_A, "api_key": "app-x", "mode": "chat"}
    assert (await call(running, "POST", "/apps", bearer(a.admin_token), json=body)).status_code == 409
    # Binding another workspace's app name is refused: team-a has no `billing`.
    response = await call(
        running, "POST", "/endpoints", bearer(a.admin_token), json={"plugin": "echo", "apps": ["billing"]}
    )
    assert response.status_code == 400 and "billing" in response.json()["error"]["message"]


async def test_a_workspace_admin_manages_its_own_workspace(teams: tuple[Running, Team, Team]) -> None:
    running, a, _ = teams
    headers = bearer(a.admin_token)
    body = {"name": "newapp", "base_url": DIFY_A, "api_key": "app-x", "mode": "chat"}
    created = await call(running, "POST", "/apps", headers, json=body)
    assert created.status_code == 201 and created.json()["workspace"] == "team-a"
    response = await call(running, "POST", "/endpoints", headers, json={"plugin": "echo", "apps": ["newapp"]})
    assert response.status_code == 201, response.text
    endpoint = response.json()
    assert endpoint["workspace"] == "team-a"
    # Its URL is like any other: no workspace in it.
    assert re.fullmatch(r"http://gw\.test/e/[A-Za-z0-9_.-]+", endpoint["url"])
    answer = await running.client.post(running.path(endpoint["url"]), json={"hello": 1})
    assert answer.status_code == 200
    assert (await call(running, "DELETE", f"/endpoints/{endpoint['id']}", headers)).status_code == 200
    assert (await call(running, "DELETE", "/apps/newapp", headers)).status_code == 200


async def test_the_operator_manages_workspaces(teams: tuple[Running, Team, Team]) -> None:
    running, a, _ = teams
    listed = (await call(running, "GET", "/workspaces", OPERATOR)).json()["workspaces"]
    assert [w["name"] for w in listed] == ["default", "team-a", "team-b"]
    created = await call(running, "POST", "/workspaces", OPERATOR, json={"name": "team-c"})
    assert created.status_code == 201
    assert (await call(running, "POST", "/workspaces", OPERATOR, json={"name": "team-c"})).status_code == 409
    assert (await call(running, "POST", "/workspaces", OPERATOR, json={"name": "Bad Name"})).status_code == 422
    # Deleting one that holds apps or endpoints is refused, naming them; an empty one goes, and its tokens.
    refused = await call(running, "DELETE", "/workspaces/team-a", OPERATOR)
    assert refused.status_code == 409 and a.endpoint in refused.json()["error"]["message"]
    token = (await call(running, "POST", "/tokens", OPERATOR, json={"workspace": "team-c"})).json()["token"]
    assert (await call(running, "GET", "/whoami", bearer(token))).status_code == 200
    assert (await call(running, "DELETE", "/workspaces/team-c", OPERATOR)).status_code == 200
    assert (await call(running, "GET", "/whoami", bearer(token))).status_code == 401
    assert (await call(running, "DELETE", "/workspaces/default", OPERATOR)).status_code == 400
    assert (await call(running, "DELETE", "/workspaces/nope", OPERATOR)).status_code == 404
    # Any name that isn't a workspace is a plain 404, however odd.
    for odd in ("../team-a", "team-a/support", "x" * 5000, "TEAM-A", "team-a\n", ""):
        response = await call(running, "GET", "/apps", OPERATOR, params={"workspace": odd})
        assert response.status_code == (200 if odd == "" else 404), odd
    # A token for a workspace that doesn't exist is refused.
    assert (await call(running, "POST", "/tokens", OPERATOR, json={"workspace": "nope"})).status_code == 404


async def test_openapi_documents_the_workspace_parameter(teams: tuple[Running, Team, Team]) -> None:
    running, _, _ = teams
    document = (await running.client.get("/admin/api/openapi.json")).json()
    params = document["paths"]["/admin/api/apps"]["get"]["parameters"]
    assert any(p["name"] == "workspace" and p["in"] == "query" for p in params)
    assert "403" in document["paths"]["/admin/api/endpoints/{id}"]["patch"]["responses"]
