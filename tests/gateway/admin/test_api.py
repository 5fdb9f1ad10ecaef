"""The admin API, driven in-process: auth, OpenAPI, apps, endpoints, request logs and jobs."""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import respx

from gateway.admin.api import ADMIN_ROUTES
from gateway.admin.auth import MAX_FAILURES_PER_MINUTE
from gateway.clock import FakeClock
from gateway.security.crypto import MASK
from gateway.storage.base import Job
from tests.support.gateway import ADMIN_TOKEN, Running, admin_headers, make_settings, post_then_hang_up, running_app

pytestmark = pytest.mark.anyio

API = "/admin/api"
DIFY = "https://dify.test/v1"
KEY = "app-" + "K" * 28  # the plain app key: must never come back from the admin API
OTHER_KEY = "app-" + "Q" * 60


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        yield running


class Admin:
    """An admin client that keeps every response body, to prove secrets never come back."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.bodies: list[str] = []

    async def call(self, method: str, path: str, *, json: Any = None, **kwargs: Any) -> httpx.Response:
        response = await self.running.client.request(method, API + path, json=json, headers=admin_headers(), **kwargs)
        self.bodies.append(response.text)
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None) -> httpx.Response:
        return await self.call("POST", path, json=json)

    async def patch(self, path: str, json: Any = None) -> httpx.Response:
        return await self.call("PATCH", path, json=json)

    async def delete(self, path: str) -> httpx.Response:
        return await self.call("DELETE", path)

    def assert_never_returned(self, *secrets: str) -> None:
        assert self.bodies
        for body in self.bodies:
            for secret in secrets:
                assert secret not in body


@pytest.fixture
def admin(running: Running) -> Admin:
    return Admin(running)


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    code: str = response.json()["error"]["code"]
    return code


async def add_app(admin: Admin, name: str = "support", key: str = KEY, mode: str = "chat") -> dict[str, Any]:
    response = await admin.post("/apps", {"name": name, "base_url": DIFY, "api_key": key, "mode": mode})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_echo(admin: Admin, **body: Any) -> dict[str, Any]:
    response = await admin.post("/endpoints", {"plugin": "echo", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def call_endpoint(running: Running, url: str, bearer: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return await running.client.post(running.path(url) + "/hook", headers=headers, **kwargs)


async def wait_for_requests(admin: Admin, endpoint_id: str, count: int) -> list[dict[str, Any]]:
    """The request log is written in the background after the answer: poll until it shows up."""
    deadline = time.monotonic() + 5.0
    while True:
        response = await admin.get(f"/endpoints/{endpoint_id}/requests")
        assert response.status_code == 200
        rows: list[dict[str, Any]] = response.json()["requests"]
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"the request log of {endpoint_id} never reached {count} entries")
        await anyio.sleep(0.01)


# -- authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="missing"),
        pytest.param([(b"authorization", b"Bearer wrong-" + b"x" * 40)], id="wrong-token"),
        pytest.param([(b"authorization", ("Basic " + ADMIN_TOKEN).encode())], id="non-bearer-scheme"),
        pytest.param([(b"authorization", ADMIN_TOKEN.encode())], id="token-without-scheme"),
        pytest.param([(b"authorization", b"Bearer \xe9")], id="non-ascii"),
        pytest.param([(b"authorization", b"Bearer \xe9\xe9" + ADMIN_TOKEN.encode())], id="non-ascii-prefix"),
        pytest.param([(b"authorization", b"Bearer ")], id="empty-bearer"),
        pytest.param([(b"authorization", b"Bearer    ")], id="blank-bearer"),
        pytest.param([(b"authorization", b"Bearer")], id="scheme-only"),
    ],
)
async def test_requests_without_a_valid_token_get_a_json_401(
    running: Running, headers: list[tuple[bytes, bytes]]
) -> None:
    for method, path in (("GET", "/apps"), ("POST", "/endpoints"), ("DELETE", "/apps/x")):
        response = await running.client.request(method, API + path, headers=headers)
        assert response.status_code == 401
        assert error_code(response) == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
        assert ADMIN_TOKEN not in response.text


async def test_the_valid_token_is_accepted_with_any_scheme_case(running: Running) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = await running.client.get(API + "/apps", headers={"authorization": f"{scheme} {ADMIN_TOKEN}"})
        assert response.status_code == 200, scheme


async def fail_logins(client: httpx.AsyncClient, times: int = MAX_FAILURES_PER_MINUTE) -> None:
    for _ in range(times):
        assert (await client.get(API + "/apps", headers={"authorization": "Bearer nope"})).status_code == 401


async def test_failed_logins_are_rate_limited(running: Running) -> None:
    await fail_logins(running.client)
    limited = await running.client.get(API + "/apps", headers={"authorization": "Bearer nope"})
    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert 0 < int(limited.headers["retry-after"]) <= 60


async def test_after_the_lockout_even_the_right_token_gets_429(running: Running) -> None:
    # Limit first, then check: a 200 here would tell a guesser that this guess was the one.
    await fail_logins(running.client)
    for path in ("/apps", "/plugins", "/nope"):
        response = await running.client.get(API + path, headers=admin_headers())
        assert response.status_code == 429, path
        assert error_code(response) == "rate_limited"
        assert "apps" not in response.text


async def test_the_lockout_ends_with_its_window(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_app(make_settings(tmp_path), clock=clock, run_workers=False) as running:
        await fail_logins(running.client)
        assert (await running.client.get(API + "/apps", headers=admin_headers())).status_code == 429
        clock.advance(60)
        assert (await running.client.get(API + "/apps", headers=admin_headers())).status_code == 200


async def test_the_lockout_is_shared_by_replicas(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with (
        running_app(settings, run_workers=False) as one,
        running_app(settings, run_workers=False) as other,
    ):
        await fail_logins(one.client, MAX_FAILURES_PER_MINUTE // 2)
        await fail_logins(other.client, MAX_FAILURES_PER_MINUTE - MAX_FAILURES_PER_MINUTE // 2)
        for replica in (one, other):
            assert (await replica.client.get(API + "/apps", headers=admin_headers())).status_code == 429


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/api/nope"),
        ("GET", "/admin/api/apps/x/y/z"),
        ("DELETE", "/admin/api/nope"),
        ("GET", "/admin/api"),
        ("GET", "/admin/"),
        ("GET", "/admin/other"),
        ("POST", "/admin/api/openapi.json"),
        ("GET", "/admin/api/openapi.json/x"),
    ],
)
async def test_every_admin_path_needs_the_token(running: Running, method: str, path: str) -> None:
    response = await running.client.request(method, path)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_successful_logins_do_not_count_towards_the_limit(running: Running) -> None:
    for _ in range(MAX_FAILURES_PER_MINUTE + 5):
        assert (await running.client.get(API + "/plugins", headers=admin_headers())).status_code == 200
    assert (await running.client.get(API + "/apps", headers={"authorization": "Bearer nope"})).status_code == 401


# -- OpenAPI ----------------------------------------------------------------------------------------


async def test_openapi_is_public_and_lists_every_route(running: Running) -> None:
    response = await running.client.get(API + "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearer": []}]

    for route in ADMIN_ROUTES:
        op = doc["paths"][API + route.path][route.method.lower()]
        assert str(route.status) in op["responses"]
        assert "401" in op["responses"]
        declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", route.path))
    operations = [op for ops in doc["paths"].values() for op in ops.values()]
    assert len(operations) == len(ADMIN_ROUTES)
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))

    # Every $ref points at a schema that exists.
    schemas = doc["components"]["schemas"]
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', response.text)
    assert refs
    for ref in refs:
        assert ref in schemas

    try:  # not a test dependency: where it is missing, the structural checks above still ran
        validator = importlib.import_module("openapi_spec_validator")
    except ImportError:
        return
    validator.validate(doc)  # pragma: no cover - only where the validator is installed


async def test_openapi_document_never_mentions_secrets(running: Running) -> None:
    text = (await running.client.get(API + "/openapi.json")).text
    assert ADMIN_TOKEN not in text
    assert running.gateway.settings.secret_key[0].get_secret_value() not in text


async def test_unknown_admin_routes_are_404_and_wrong_methods_405(admin: Admin) -> None:
    assert (await admin.get("/nope")).status_code == 404  # with the token; 401 without it
    assert (await admin.running.client.get("/admin/other", headers=admin_headers())).status_code == 404
    assert (await admin.call("PUT", "/apps")).status_code == 405


# -- plugins ----------------------------------------------------------------------------------------


async def test_plugins_lists_echo_with_its_secret_settings(admin: Admin) -> None:
    response = await admin.get("/plugins")
    assert response.status_code == 200
    plugins = {p["name"]: p for p in response.json()["plugins"]}
    echo = plugins["echo"]
    assert echo["secret_settings"] == ["token"]
    assert "greeting" in echo["settings_schema"]["properties"]
    assert echo["jobs"] == ["store"]


# -- apps -------------------------------------------------------------------------------------------


async def test_app_lifecycle_never_returns_the_key(admin: Admin) -> None:
    created = await add_app(admin)
    assert created["name"] == "support"
    assert created["base_url"] == DIFY
    assert created["mode"] == "chat"
    assert created["api_key"] == MASK

    listed = (await admin.get("/apps")).json()["apps"]
    assert [a["name"] for a in listed] == ["support"]
    shown = await admin.get("/apps/support")
    assert shown.status_code == 200
    assert shown.json()["api_key"] == MASK

    changed = await admin.patch("/apps/support", {"mode": "workflow", "base_url": DIFY + "/"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["mode"] == "workflow"
    assert changed.json()["base_url"] == DIFY
    assert changed.json()["updated_at"] >= created["updated_at"]

    # A new key with the mode given: no network call, and the new key is kept (encrypted).
    rekeyed = await admin.patch("/apps/support", {"api_key": OTHER_KEY, "mode": "chat"})
    assert rekeyed.status_code == 200
    record = await admin.running.gateway.apps.get("support")
    assert admin.running.gateway.apps.api_key(record) == OTHER_KEY
    assert OTHER_KEY not in str(record)

    removed = await admin.delete("/apps/support")
    assert removed.status_code == 200
    assert removed.json() == {"deleted": "support"}
    assert (await admin.get("/apps/support")).status_code == 404
    assert (await admin.get("/apps")).json() == {"apps": []}

    admin.assert_never_returned(KEY, OTHER_KEY)


async def test_the_mask_does_not_reveal_the_key_length(admin: Admin) -> None:
    short = await add_app(admin, "short", "app-" + "s" * 8)
    long = await add_app(admin, "long", "app-" + "l" * 200)
    assert short["api_key"] == long["api_key"] == MASK
    shown = [a["api_key"] for a in (await admin.get("/apps")).json()["apps"]]
    assert shown == [MASK, MASK]
    admin.assert_never_returned("s" * 8, "l" * 16)


async def test_adding_an_app_twice_is_a_conflict(admin: Admin) -> None:
    await add_app(admin)
    again = await admin.post("/apps", {"name": "support", "base_url": DIFY, "api_key": OTHER_KEY, "mode": "chat"})
    assert again.status_code == 409
    assert error_code(again) == "conflict"
    # The first registration is untouched.
    record = await admin.running.gateway.apps.get("support")
    assert admin.running.gateway.apps.api_key(record) == KEY
    admin.assert_never_returned(KEY, OTHER_KEY)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bad Name!", "base_url": DIFY, "api_key": KEY, "mode": "chat"}, "name"),
        ({"name": "-lead", "base_url": DIFY, "api_key": KEY, "mode": "chat"}, "name"),
        ({"name": "ok", "base_url": "ftp://dify.test", "api_key": KEY, "mode": "chat"}, "base_url"),
        ({"name": "ok", "base_url": "dify.test/v1", "api_key": KEY, "mode": "chat"}, "base_url"),
        ({"name": "ok", "base_url": DIFY, "api_key": KEY, "mode": "telepathy"}, "mode"),
        ({"name": "ok", "base_url": DIFY, "api_key": "", "mode": "chat"}, "api_key"),
        ({"name": "ok", "base_url": DIFY, "mode": "chat"}, "api_key"),
        ({"base_url": DIFY, "api_key": KEY, "mode": "chat"}, "name"),
    ],
)
async def test_invalid_apps_are_422_with_field_errors(admin: Admin, body: dict[str, Any], field: str) -> None:
    response = await admin.post("/apps", body)
    assert response.status_code == 422
    assert error_code(response) == "validation_failed"
    errors = response.json()["error"]["errors"]
    assert field in {e["field"] for e in errors}
    assert all(e["message"] for e in errors)
    admin.assert_never_returned(KEY)
    assert (await admin.get("/apps")).json() == {"apps": []}


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"name": '])
async def test_a_body_that_is_not_a_json_object_is_422(running: Running, raw: bytes) -> None:
    headers = {**admin_headers(), "content-type": "application/json"}
    response = await running.client.post(API + "/apps", content=raw, headers=headers)
    assert response.status_code == 422
    assert error_code(response) == "validation_failed"


async def test_a_client_gone_mid_body_is_a_4xx_without_an_error_log(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        sent = await post_then_hang_up(
            running.app, API + "/apps", b'{"name": ', [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode())]
        )
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_invalid_app_updates_are_422(admin: Admin) -> None:
    await add_app(admin)
    response = await admin.patch("/apps/support", {"base_url": "nope"})
    assert response.status_code == 422
    assert "base_url" in {e["field"] for e in response.json()["error"]["errors"]}
    assert (await admin.patch("/apps/missing", {"mode": "chat"})).status_code == 404


async def test_a_new_base_url_needs_the_key_too(admin: Admin) -> None:
    """The current key must not go to a host it was never given for."""
    await add_app(admin)
    moved = {"base_url": "https://elsewhere.test/v1", "mode": "chat"}
    response = await admin.patch("/apps/support", moved)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    assert [e["field"] for e in response.json()["error"]["errors"]] == ["api_key"]
    assert "api_key" in response.json()["error"]["message"]
    assert (await admin.get("/apps/support")).json()["base_url"] == DIFY  # nothing changed
    same = await admin.patch("/apps/support", {"base_url": DIFY + "/", "mode": "chat"})  # the same URL: fine
    assert same.status_code == 200
    given = await admin.patch("/apps/support", {**moved, "api_key": OTHER_KEY})
    assert given.status_code == 200 and given.json()["base_url"] == "https://elsewhere.test/v1"
    admin.assert_never_returned(KEY, OTHER_KEY)


async def test_missing_apps_are_404(admin: Admin) -> None:
    for response in (
        await admin.get("/apps/missing"),
        await admin.delete("/apps/missing"),
        await admin.post("/apps/missing/check"),
    ):
        assert response.status_code == 404
        assert error_code(response) == "not_found"


async def test_an_app_bound_to_an_endpoint_cannot_be_removed(admin: Admin) -> None:
    await add_app(admin)
    endpoint = await create_echo(admin, apps=["support"])
    response = await admin.delete("/apps/support")
    assert response.status_code == 409
    assert endpoint["id"] in response.json()["error"]["message"]
    assert (await admin.get("/apps/support")).status_code == 200

    assert (await admin.delete(f"/endpoints/{endpoint['id']}")).status_code == 200
    assert (await admin.delete("/apps/support")).status_code == 200


# -- apps against a (mocked) Dify -------------------------------------------------------------------


@respx.mock
async def test_check_calls_info_with_the_key(admin: Admin) -> None:
    info = {"name": "Support bot", "description": "", "tags": [], "mode": "chat", "author_name": "me"}
    route = respx.get(f"{DIFY}/info").mock(return_value=httpx.Response(200, json=info))
    form = [{"paragraph": {"variable": "question", "label": "Question", "required": True}}]
    moderation = {"enabled": True, "config": {"outputs_config": {"enabled": True}}}
    parameters = respx.get(f"{DIFY}/parameters").mock(
        return_value=httpx.Response(200, json={"user_input_form": form, "sensitive_word_avoidance": moderation})
    )
    await add_app(admin)
    assert (await admin.get("/apps/support")).json()["inputs"] is None  # added with a mode: not read yet
    response = await admin.post("/apps/support/check")
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "info": info}
    assert route.call_count == parameters.call_count == 1
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    # The check keeps what /parameters says: the input form and the moderation flag.
    shown = (await admin.get("/apps/support")).json()
    assert shown["inputs"] == [{"variable": "question", "type": "paragraph", "required": True, "label": "Question"}]
    assert shown["output_moderation"] is True
    admin.assert_never_returned(KEY)


@respx.mock
async def test_check_with_a_rejected_key_is_a_502_without_the_key(admin: Admin) -> None:
    respx.get(f"{DIFY}/info").mock(
        return_value=httpx.Response(401, json={"code": "unauthorized", "message": f"bad key {KEY}"})
    )
    await add_app(admin)
    response = await admin.post("/apps/support/check")
    assert response.status_code == 502
    assert error_code(response) == "upstream_error"
    assert response.json()["error"]["message"]
    admin.assert_never_returned(KEY)


@respx.mock
async def test_check_against_an_unreachable_dify_is_a_502(admin: Admin) -> None:
    respx.get(f"{DIFY}/info").mock(side_effect=httpx.ConnectError("refused"))
    await add_app(admin)
    response = await admin.post("/apps/support/check")
    assert response.status_code == 502
    assert error_code(response) == "upstream_error"
    admin.assert_never_returned(KEY)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(200, text="<html>the Dify console</html>"), id="html"),
        pytest.param(httpx.Response(200, json=["chat"]), id="json-list"),
        pytest.param(httpx.Response(200, json="chat"), id="json-string"),
    ],
)
@respx.mock
async def test_an_info_answer_that_is_not_a_json_object_is_a_502(admin: Admin, answer: httpx.Response) -> None:
    """A base URL pointing at the console (not /v1) answers 200 with HTML: an upstream error, never a 500."""
    respx.get(f"{DIFY}/info").mock(return_value=answer)
    detect = await admin.post("/apps", {"name": "detect", "base_url": DIFY, "api_key": KEY})
    assert detect.status_code == 502
    assert error_code(detect) == "upstream_error"
    await add_app(admin)
    check = await admin.post("/apps/support/check")
    assert check.status_code == 502
    assert error_code(check) == "upstream_error"
    admin.assert_never_returned(KEY)


@respx.mock
async def test_the_mode_is_detected_from_info_when_omitted(admin: Admin) -> None:
    route = respx.get(f"{DIFY}/info").mock(return_value=httpx.Response(200, json={"mode": "advanced-chat"}))
    respx.get(f"{DIFY}/parameters").mock(return_value=httpx.Response(200, json={"user_input_form": []}))
    response = await admin.post("/apps", {"name": "support", "base_url": DIFY, "api_key": KEY})
    assert response.status_code == 201, response.text
    assert response.json()["mode"] == "advanced-chat"
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"

    # A new key without a mode is checked (and the mode detected) again.
    route.mock(return_value=httpx.Response(200, json={"mode": "workflow"}))
    response = await admin.patch("/apps/support", {"api_key": OTHER_KEY})
    assert response.status_code == 200
    assert response.json()["mode"] == "workflow"
    assert route.calls.last.request.headers["authorization"] == f"Bearer {OTHER_KEY}"
    admin.assert_never_returned(KEY, OTHER_KEY)


@respx.mock
async def test_mode_detection_with_a_rejected_key_registers_nothing(admin: Admin) -> None:
    respx.get(f"{DIFY}/info").mock(return_value=httpx.Response(401, json={"code": "unauthorized"}))
    response = await admin.post("/apps", {"name": "support", "base_url": DIFY, "api_key": KEY})
    assert response.status_code == 502
    assert error_code(response) == "upstream_error"
    assert (await admin.get("/apps")).json() == {"apps": []}
    admin.assert_never_returned(KEY)


@respx.mock
async def test_an_unknown_reported_mode_asks_for_an_explicit_one(admin: Admin) -> None:
    respx.get(f"{DIFY}/info").mock(return_value=httpx.Response(200, json={"mode": "telepathy"}))
    response = await admin.post("/apps", {"name": "support", "base_url": DIFY, "api_key": KEY})
    assert response.status_code == 400
    assert "mode" in response.json()["error"]["message"]
    assert (await admin.get("/apps")).json() == {"apps": []}


# -- endpoints --------------------------------------------------------------------------------------


async def test_create_an_endpoint_without_a_secret(admin: Admin) -> None:
    created = await create_echo(admin, settings={"greeting": "hi"}, name="demo")
    assert created["id"].startswith("ep_")
    assert created["url"].startswith("http://gw.test/e/")
    assert created["plugin"] == "echo"
    assert created["name"] == "demo"
    assert created["enabled"] is True
    assert created["settings"] == {"greeting": "hi", "token": None}
    assert created["previous_urls_expire_at"] == []

    answer = await call_endpoint(admin.running, created["url"], content=b"ping")
    assert answer.status_code == 200
    assert answer.json()["greeting"] == "hi"
    assert answer.json()["body"] == "ping"


async def test_create_an_endpoint_with_a_secret_masks_it(admin: Admin) -> None:
    secret = "s3cret-" + "z" * 30
    await add_app(admin)
    created = await create_echo(admin, apps=["support"], settings={"token": secret})
    assert created["url"].startswith(admin.running.gateway.settings.public_url + "/e/")
    assert created["apps"] == ["support"]
    assert created["settings"]["greeting"] == "echo"
    assert created["settings"]["token"] == MASK

    shown = (await admin.get(f"/endpoints/{created['id']}")).json()
    assert shown["settings"]["token"] == MASK
    assert shown["url"] == created["url"]
    listed = (await admin.get("/endpoints")).json()["endpoints"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert listed[0]["settings"]["token"] == MASK
    assert listed[0]["url"] == created["url"]

    assert (await call_endpoint(admin.running, created["url"], secret)).status_code == 200
    assert (await call_endpoint(admin.running, created["url"], "wrong")).status_code == 401
    assert (await call_endpoint(admin.running, created["url"])).status_code == 401
    admin.assert_never_returned(secret, KEY)


async def test_endpoint_options_are_kept(admin: Admin) -> None:
    created = await create_echo(admin, rate_limit_per_minute=5, log_bodies=True, max_body_bytes=1000)
    assert created["rate_limit_per_minute"] == 5
    assert created["log_bodies"] is True
    assert created["max_body_bytes"] == 1000
    changed = (await admin.patch(f"/endpoints/{created['id']}", {"rate_limit_per_minute": None})).json()
    assert changed["rate_limit_per_minute"] is None
    assert changed["log_bodies"] is True
    assert changed["max_body_bytes"] == 1000


async def test_invalid_settings_are_422_without_echoing_the_value(admin: Admin) -> None:
    bad_greeting = "Q" * 300  # longer than the 200 allowed
    response = await admin.post("/endpoints", {"plugin": "echo", "settings": {"greeting": bad_greeting}})
    assert response.status_code == 422
    assert error_code(response) == "validation_failed"
    assert {e["field"] for e in response.json()["error"]["errors"]} == {"greeting"}

    bad_secret = {"nested": "hunter2-secret-value"}
    response = await admin.post("/endpoints", {"plugin": "echo", "settings": {"token": bad_secret}})
    assert response.status_code == 422
    assert "token" in {e["field"] for e in response.json()["error"]["errors"]}

    admin.assert_never_returned(bad_greeting[:50], "hunter2-secret-value")
    assert (await admin.get("/endpoints")).json() == {"endpoints": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plugin": "echo", "rate_limit_per_minute": -1}, "rate_limit_per_minute"),
        ({"plugin": "echo", "max_body_bytes": 0}, "max_body_bytes"),
        ({"plugin": "echo", "name": "n" * 101}, "name"),
        ({"plugin": "echo", "apps": "support"}, "apps"),
        ({}, "plugin"),
    ],
)
async def test_invalid_endpoint_bodies_are_422(admin: Admin, body: dict[str, Any], field: str) -> None:
    response = await admin.post("/endpoints", body)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["error"]["errors"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"log_bodies": 0}, "log_bodies"),
        ({"log_bodies": 1}, "log_bodies"),
        ({"log_bodies": "true"}, "log_bodies"),
        ({"rate_limit_per_minute": True}, "rate_limit_per_minute"),
        ({"rate_limit_per_minute": "5"}, "rate_limit_per_minute"),
        ({"rate_limit_per_minute": 5.5}, "rate_limit_per_minute"),
        ({"max_body_bytes": False}, "max_body_bytes"),
        ({"name": 5}, "name"),
    ],
)
async def test_endpoint_inputs_are_strict(admin: Admin, body: dict[str, Any], field: str) -> None:
    created = await admin.post("/endpoints", {"plugin": "echo", **body})
    assert created.status_code == 422, created.text
    assert field in {e["field"] for e in created.json()["error"]["errors"]}
    existing = await create_echo(admin)
    updated = await admin.patch(f"/endpoints/{existing['id']}", body)
    assert updated.status_code == 422, updated.text
    assert (await admin.get(f"/endpoints/{existing['id']}")).json()["log_bodies"] is False


@pytest.mark.parametrize("value", [False, True, "60"])
async def test_plugin_settings_are_strict(admin: Admin, value: Any) -> None:
    await add_app(admin)
    body = {"plugin": "webhook", "apps": ["support"], "settings": {"wait_seconds": value}}
    created = await admin.post("/endpoints", body)
    assert created.status_code == 422, created.text
    assert {e["field"] for e in created.json()["error"]["errors"]} == {"wait_seconds"}
    existing = await admin.post("/endpoints", {"plugin": "webhook", "apps": ["support"]})
    assert existing.status_code == 201, existing.text
    updated = await admin.patch(f"/endpoints/{existing.json()['id']}", {"settings": {"wait_seconds": value}})
    assert updated.status_code == 422, updated.text
    shown = await admin.get(f"/endpoints/{existing.json()['id']}")
    assert shown.json()["settings"]["wait_seconds"] == 120.0
    # Numbers are numbers, integers included.
    changed = await admin.patch(f"/endpoints/{existing.json()['id']}", {"settings": {"wait_seconds": 30}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["settings"]["wait_seconds"] == 30.0


async def test_an_unknown_plugin_is_400(admin: Admin) -> None:
    response = await admin.post("/endpoints", {"plugin": "nope"})
    assert response.status_code == 400
    assert error_code(response) == "bad_request"
    assert "echo" in response.json()["error"]["message"]  # names what is installed


async def test_an_unknown_app_is_400(admin: Admin) -> None:
    response = await admin.post("/endpoints", {"plugin": "echo", "apps": ["missing"]})
    assert response.status_code == 400
    assert "missing" in response.json()["error"]["message"]
    await add_app(admin)
    response = await admin.post("/endpoints", {"plugin": "echo", "apps": ["support", "support"]})
    assert response.status_code == 400
    assert (await admin.get("/endpoints")).json() == {"endpoints": []}


async def test_missing_endpoints_are_404(admin: Admin) -> None:
    for response in (
        await admin.get("/endpoints/ep_missing"),
        await admin.patch("/endpoints/ep_missing", {"name": "x"}),
        await admin.delete("/endpoints/ep_missing"),
        await admin.post("/endpoints/ep_missing/disable"),
        await admin.post("/endpoints/ep_missing/enable"),
        await admin.post("/endpoints/ep_missing/rotate"),
        await admin.get("/endpoints/ep_missing/requests"),
    ):
        assert response.status_code == 404
        assert error_code(response) == "not_found"


async def test_updating_settings_merges_and_keeps_secrets(admin: Admin) -> None:
    old, new = "old-token-" + "a" * 30, "new-token-" + "b" * 30
    created = await create_echo(admin, settings={"greeting": "hi", "token": old})
    url, path = created["url"], f"/endpoints/{created['id']}"

    # Only the greeting changes: the secret stays as it was.
    response = await admin.patch(path, {"settings": {"greeting": "hello"}})
    assert response.status_code == 200, response.text
    assert response.json()["settings"] == {"greeting": "hello", "token": MASK}
    answer = await call_endpoint(admin.running, url, old)
    assert answer.status_code == 200
    assert answer.json()["greeting"] == "hello"

    # A new secret replaces the old one; the greeting stays.
    response = await admin.patch(path, {"settings": {"token": new}})
    assert response.json()["settings"] == {"greeting": "hello", "token": MASK}
    assert (await call_endpoint(admin.running, url, old)).status_code == 401
    answer = await call_endpoint(admin.running, url, new)
    assert answer.status_code == 200
    assert answer.json()["greeting"] == "hello"

    # Unsetting the secret opens the endpoint.
    response = await admin.patch(path, {"unset": ["token"]})
    assert response.json()["settings"] == {"greeting": "hello", "token": None}
    assert (await call_endpoint(admin.running, url)).status_code == 200

    # An invalid change is refused and changes nothing.
    response = await admin.patch(path, {"settings": {"greeting": "x" * 201}})
    assert response.status_code == 422
    assert (await call_endpoint(admin.running, url)).json()["greeting"] == "hello"

    response = await admin.patch(path, {"name": "renamed"})
    assert response.json()["name"] == "renamed"
    assert response.json()["url"] == url
    admin.assert_never_returned(old, new)


async def test_updating_the_bound_apps(admin: Admin) -> None:
    await add_app(admin, "one")
    await add_app(admin, "two")
    created = await create_echo(admin, apps=["one"])
    path = f"/endpoints/{created['id']}"
    assert (await admin.patch(path, {"apps": ["one", "two"]})).json()["apps"] == ["one", "two"]
    assert (await admin.patch(path, {"apps": ["missing"]})).status_code == 400
    assert (await admin.get(path)).json()["apps"] == ["one", "two"]


async def test_disabled_endpoints_look_like_missing_ones(admin: Admin) -> None:
    created = await create_echo(admin)
    url, path = created["url"], f"/endpoints/{created['id']}"
    never = await admin.running.client.post("/e/never-existed/hook")
    forged_but_wellformed = admin.running.gateway.tokens.mint()
    unknown = await admin.running.client.post(f"/e/{forged_but_wellformed}/hook")
    assert never.status_code == unknown.status_code == 404
    assert never.content == unknown.content

    disabled = await admin.post(path + "/disable")
    assert disabled.status_code == 200
    assert disabled.json()["enabled"] is False
    answer = await call_endpoint(admin.running, url)
    assert answer.status_code == 404
    assert answer.content == never.content
    assert answer.headers["content-type"] == never.headers["content-type"]

    enabled = await admin.post(path + "/enable")
    assert enabled.json()["enabled"] is True
    assert (await call_endpoint(admin.running, url)).status_code == 200


async def test_rotation_with_grace_keeps_both_urls(admin: Admin) -> None:
    created = await create_echo(admin)
    rotated = await admin.post(f"/endpoints/{created['id']}/rotate", {"grace_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new_url = rotated.json()["url"]
    assert new_url != created["url"]
    assert new_url.startswith("http://gw.test/e/")
    assert len(rotated.json()["previous_urls_expire_at"]) == 1
    assert (await call_endpoint(admin.running, created["url"])).status_code == 200
    assert (await call_endpoint(admin.running, new_url)).status_code == 200
    # The endpoint now shows its new URL.
    assert (await admin.get(f"/endpoints/{created['id']}")).json()["url"] == new_url


async def test_rotation_without_grace_retires_the_old_url_at_once(admin: Admin) -> None:
    created = await create_echo(admin)
    rotated = await admin.post(f"/endpoints/{created['id']}/rotate", {"grace_seconds": 0})
    assert rotated.status_code == 200
    assert rotated.json()["previous_urls_expire_at"] == []
    gone = await call_endpoint(admin.running, created["url"])
    assert gone.status_code == 404
    assert gone.content == (await admin.running.client.post("/e/never-existed/hook")).content
    assert (await call_endpoint(admin.running, rotated.json()["url"])).status_code == 200

    assert (await admin.post(f"/endpoints/{created['id']}/rotate", {"grace_seconds": -1})).status_code == 422


@pytest.mark.parametrize(
    "raw",
    [
        b'{"grace_seconds": 1e999}',
        b'{"grace_seconds": 1e300}',
        b'{"grace_seconds": NaN}',
        b'{"grace_seconds": false}',  # not 0: a typo must not retire the old URL at once
        b'{"grace_seconds": true}',
        b'{"grace_seconds": "60"}',
    ],
)
async def test_an_infinite_or_absurd_grace_is_422_and_changes_nothing(admin: Admin, raw: bytes) -> None:
    created = await create_echo(admin)
    headers = {**admin_headers(), "content-type": "application/json"}
    path = f"{API}/endpoints/{created['id']}/rotate"
    response = await admin.running.client.post(path, content=raw, headers=headers)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    shown = (await admin.get(f"/endpoints/{created['id']}")).json()
    assert shown["url"] == created["url"] and shown["previous_urls_expire_at"] == []
    assert (await call_endpoint(admin.running, created["url"])).status_code == 200


async def test_rotation_without_grace_also_retires_urls_still_in_their_grace(admin: Admin) -> None:
    """Routine rotation, then a leak: `grace_seconds=0` must stop every older URL, not only the last one."""
    created = await create_echo(admin)
    path = f"/endpoints/{created['id']}"
    graced = (await admin.post(path + "/rotate", {"grace_seconds": 3600})).json()
    assert (await call_endpoint(admin.running, created["url"])).status_code == 200
    final = (await admin.post(path + "/rotate", {"grace_seconds": 0})).json()
    assert final["previous_urls_expire_at"] == []
    assert (await call_endpoint(admin.running, created["url"])).status_code == 404
    assert (await call_endpoint(admin.running, graced["url"])).status_code == 404
    assert (await call_endpoint(admin.running, final["url"])).status_code == 200


async def test_a_longer_grace_never_extends_an_earlier_one(admin: Admin) -> None:
    created = await create_echo(admin)
    path = f"/endpoints/{created['id']}"
    first = (await admin.post(path + "/rotate", {"grace_seconds": 60})).json()["previous_urls_expire_at"]
    second = (await admin.post(path + "/rotate", {"grace_seconds": 3600})).json()["previous_urls_expire_at"]
    assert len(first) == 1
    assert len(second) == 2
    assert second[0] == first[0]
    assert second[1] > first[0]


async def test_deleting_an_endpoint(admin: Admin) -> None:
    created = await create_echo(admin)
    path = f"/endpoints/{created['id']}"
    assert (await call_endpoint(admin.running, created["url"])).status_code == 200
    response = await admin.delete(path)
    assert response.status_code == 200
    assert response.json() == {"deleted": created["id"]}
    assert (await admin.get(path)).status_code == 404
    assert (await admin.get(path + "/requests")).status_code == 404
    assert (await call_endpoint(admin.running, created["url"])).status_code == 404
    assert (await admin.get("/endpoints")).json() == {"endpoints": []}
    assert (await admin.delete(path)).status_code == 404


# -- request log ------------------------------------------------------------------------------------


async def test_the_request_log_keeps_no_secrets_or_bodies(admin: Admin) -> None:
    secret = "bearer-" + "t" * 30
    created = await create_echo(admin, settings={"token": secret})
    body = b"private-body-content"
    assert (await call_endpoint(admin.running, created["url"], secret, content=body)).status_code == 200
    assert (await call_endpoint(admin.running, created["url"], "wrong-" + "w" * 20, content=body)).status_code == 401

    rows = await wait_for_requests(admin, created["id"], 2)
    by_status = {r["status"]: r for r in rows}
    assert by_status[200]["verdict"] == "ok"
    assert by_status[401]["verdict"] == "failed"
    for row in rows:
        assert row["method"] == "POST"
        assert row["path"] == "/hook"
        assert row["body"] is None
        assert row["latency_ms"] >= 0
        assert row["request_id"]
        assert "authorization" not in {k.lower() for k in row}

    admin.assert_never_returned(secret, "w" * 20, body.decode())


async def test_the_request_log_shows_skipped_verification_and_limits(admin: Admin) -> None:
    created = await create_echo(admin)
    for _ in range(3):
        assert (await call_endpoint(admin.running, created["url"])).status_code == 200
    rows = await wait_for_requests(admin, created["id"], 3)
    assert {r["verdict"] for r in rows} == {"skipped"}
    limited = await admin.get(f"/endpoints/{created['id']}/requests", params={"limit": "1"})
    assert len(limited.json()["requests"]) == 1
    bad = await admin.get(f"/endpoints/{created['id']}/requests", params={"limit": "-1"})
    assert bad.status_code == 400


async def test_the_request_log_keeps_bodies_when_asked(admin: Admin) -> None:
    created = await create_echo(admin, log_bodies=True)
    body = "logged-body-content"
    assert (await call_endpoint(admin.running, created["url"], content=body.encode())).status_code == 200
    rows = await wait_for_requests(admin, created["id"], 1)
    assert rows[0]["body"] == body
    assert rows[0]["verdict"] == "skipped"


async def test_turning_body_logging_on_later(admin: Admin) -> None:
    created = await create_echo(admin)
    response = await admin.patch(f"/endpoints/{created['id']}", {"log_bodies": True})
    assert response.json()["log_bodies"] is True
    assert (await call_endpoint(admin.running, created["url"], content=b"later")).status_code == 200
    rows = await wait_for_requests(admin, created["id"], 1)
    assert rows[0]["body"] == "later"


# -- jobs -------------------------------------------------------------------------------------------


async def make_dead_job(running: Running, endpoint_id: str) -> str:
    store = running.gateway.store
    now = running.gateway.clock.time()
    payload = {"handler": "store", "data": {"name": "x", "value": "payload-secret-value"}}
    job, created = await store.job_enqueue(Job(id="job_dead1", kind="plugin", payload=payload, endpoint_id=endpoint_id))
    assert created
    claimed = await store.job_claim("test-worker", now, 30.0, job_id=job.id)
    assert claimed is not None
    assert await store.job_dead(job.id, "test-worker", "it broke")
    return job.id


async def test_dead_jobs_can_be_listed_shown_and_replayed(admin: Admin) -> None:
    endpoint = await create_echo(admin)
    job_id = await make_dead_job(admin.running, endpoint["id"])

    dead = (await admin.get("/jobs", params={"state": "dead"})).json()["jobs"]
    assert [j["id"] for j in dead] == [job_id]
    assert dead[0]["last_error"] == "it broke"
    assert dead[0]["handler"] == "store"
    assert dead[0]["endpoint_id"] == endpoint["id"]
    assert (await admin.get("/jobs", params={"state": "queued"})).json() == {"jobs": []}
    assert [j["id"] for j in (await admin.get("/jobs")).json()["jobs"]] == [job_id]

    shown = await admin.get(f"/jobs/{job_id}")
    assert shown.status_code == 200
    assert shown.json()["state"] == "dead"
    assert shown.json()["attempts"] == 1

    replayed = await admin.post(f"/jobs/{job_id}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["state"] == "queued"
    assert replayed.json()["attempts"] == 0
    assert [j["id"] for j in (await admin.get("/jobs", params={"state": "queued"})).json()["jobs"]] == [job_id]

    # Only a dead job can be replayed.
    again = await admin.post(f"/jobs/{job_id}/replay")
    assert again.status_code == 400
    # Payloads (user content) are never shown.
    admin.assert_never_returned("payload-secret-value")


async def test_job_errors(admin: Admin) -> None:
    bad = await admin.get("/jobs", params={"state": "bogus"})
    assert bad.status_code == 400
    assert error_code(bad) == "bad_request"
    for limit in ("many", "-1", "1.5", "²", "١"):  # "²" and "١" pass str.isdigit()
        response = await admin.get("/jobs", params={"limit": limit})
        assert response.status_code == 400, limit
        assert error_code(response) == "bad_request"
    assert (await admin.get("/jobs", params={"limit": "99999999999999999999"})).status_code == 200
    assert (await admin.get("/jobs/job_missing")).status_code == 404
    assert (await admin.post("/jobs/job_missing/replay")).status_code == 404  # like any id it can't see
