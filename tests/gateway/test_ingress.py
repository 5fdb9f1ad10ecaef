"""The endpoint path end to end, in-process: routing, fidelity, limits, verification, errors."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from endpoints.echo import plugin as echo
from gateway.admin.usecases import delete_endpoint
from gateway.host.registry import PluginRegistry
from gateway.plugin import Context, Headers, Permission, Plugin, Request, Response, Verdict, unverified
from gateway.records.apps import AppIn
from gateway.records.endpoints import EndpointOptions
from tests.support.gateway import Running, make_settings, post_then_hang_up, running_app

pytestmark = pytest.mark.anyio


class Empty(BaseModel):
    pass


async def reject_unless_header(request: Request, ctx: Context) -> Verdict:
    if request.headers.get("x-ok") == "yes":
        return Verdict.ok(verified={"checked": request.headers.get("x-who", "")})
    if request.headers.get("x-custom") == "yes":
        return Verdict.failed("custom", Response.json({"nope": True}, status=403))
    return Verdict.failed("missing x-ok")


strict = Plugin("strict", settings=Empty, verifier=reject_unless_header)


@strict.route("/open", methods=["GET"], verify=False)
async def open_route(request: Request, ctx: Context) -> Response:
    return Response.text("open")


@strict.route("/verified", methods=["POST"])
async def verified(request: Request, ctx: Context) -> Response:
    return Response.json({"verified": request.verified})


@strict.route("/crash", methods=["POST"])
async def crash(request: Request, ctx: Context) -> Response:
    raise RuntimeError("secret internals")


@strict.route("/storage", methods=["POST"])
async def undeclared(request: Request, ctx: Context) -> Response:
    await ctx.storage.get("x")  # the plugin did not declare STORAGE
    return Response.empty()


@strict.route("/json", methods=["POST"])
async def parse(request: Request, ctx: Context) -> Response:
    return Response.json(request.json())


@strict.route("/items/{item}", methods=["GET", "DELETE"])
async def item(request: Request, ctx: Context) -> Response:
    return Response.json({"item": request.path_params["item"]})


streamer = Plugin("streamer", settings=Empty, verifier=unverified, permissions={Permission.STORAGE})


@streamer.route("/", methods=["GET"])
async def stream(request: Request, ctx: Context) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"data: {i}\n\n".encode()

    return Response.stream(chunks())


@streamer.route("/cookies", methods=["GET"])
async def cookies(request: Request, ctx: Context) -> Response:
    return Response.text("ok", headers=[("set-cookie", "a=1"), ("set-cookie", "b=2")])


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    registry = PluginRegistry([echo, strict, streamer])
    async with running_app(make_settings(tmp_path, max_body_bytes=1000), registry=registry, run_workers=False) as r:
        await r.gateway.apps.add(
            AppIn(name="demo", base_url="http://dify.test/v1", api_key=SecretStr("app-k"), mode="chat")
        )
        yield r


async def mint(running: Running, plugin: str = "echo", **kwargs: Any) -> str:
    _, url = await running.gateway.endpoints.create(plugin, [], {}, **kwargs)
    return running.path(url)


async def test_every_method_and_sub_path_reaches_the_plugin_intact(running: Running) -> None:
    path = await mint(running)
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        response = await running.client.request(
            method,
            f"{path}/a/b%2Fc/?x=1&x=2&y=%20",
            content=b"\x00\xff raw",
            headers=[("x-multi", "one"), ("x-multi", "two")],
        )
        assert response.status_code == 200, method
        body = response.json()
        assert body["method"] == method
        assert body["path"] == "/a/b/c/"
        assert body["query_string"] == "x=1&x=2&y=%20"
        assert ["x-multi", "one"] in body["headers"] and ["x-multi", "two"] in body["headers"]
        assert body["body_encoding"] == "base64" and body["body_length"] == len(b"\x00\xff raw")
    head = await running.client.head(f"{path}/anything")
    assert head.status_code == 200
    root = await running.client.get(path)
    assert root.json()["path"] == "/"


async def test_multi_valued_response_headers_survive(running: Running) -> None:
    path = await mint(running, "streamer")
    response = await running.client.get(f"{path}/cookies")
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


async def test_streamed_body(running: Running) -> None:
    path = await mint(running, "streamer")
    response = await running.client.get(path)
    assert response.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"


async def test_unknown_forged_disabled_and_deleted_ids_look_the_same(running: Running) -> None:
    gateway = running.gateway
    record, url = await gateway.endpoints.create("echo", [], {})
    disabled_path = running.path(url)
    await gateway.endpoints.set_enabled(record.id, False)
    deleted_record, deleted_url = await gateway.endpoints.create("echo", [], {})
    await delete_endpoint(
        deleted_record.id, endpoints=gateway.endpoints, requests=gateway.requests, store=gateway.store
    )
    forged = "/e/" + "A" * 24 + "." + "B" * 22
    unsigned_but_wellformed = "/e/" + gateway.tokens.mint()  # authentic but never stored
    bodies = set()
    for path in (disabled_path, running.path(deleted_url), forged, unsigned_but_wellformed, "/e/x", "/e/%C3%A9"):
        response = await running.client.post(path + "/sub", content=b"{}")
        assert response.status_code == 404
        bodies.add(response.content)
    assert len(bodies) == 1


async def test_forged_token_costs_no_store_lookup(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    store = running.gateway.store
    original = store.kv_get

    async def counting(key: str) -> str | None:
        calls.append(key)
        return await original(key)

    monkeypatch.setattr(store, "kv_get", counting)
    response = await running.client.get("/e/" + "A" * 24 + "." + "B" * 22)
    assert response.status_code == 404
    assert calls == []


async def test_rotation_grace_then_404(running: Running) -> None:
    gateway = running.gateway
    record, old_url = await gateway.endpoints.create("echo", [], {})
    _, new_url = await gateway.endpoints.rotate(record.id, grace=3600)
    assert (await running.client.get(running.path(old_url))).status_code == 200
    assert (await running.client.get(running.path(new_url))).status_code == 200
    _, newest = await gateway.endpoints.rotate(record.id, grace=0)
    assert (await running.client.get(running.path(new_url))).status_code == 404
    assert (await running.client.get(running.path(newest))).status_code == 200
    # A zero grace retires every earlier URL at once (the response to a leaked URL).
    assert (await running.client.get(running.path(old_url))).status_code == 404


async def test_body_over_the_cap_by_content_length_is_refused_before_reading(running: Running) -> None:
    path = await mint(running)
    response = await running.client.post(path, content=b"x" * 1001)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert (await running.client.post(path, content=b"x" * 1000)).status_code == 200


async def test_body_over_the_cap_without_or_with_a_lying_content_length(running: Running) -> None:
    path = await mint(running)

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 100

    response = await running.client.post(path, content=chunked())
    assert response.status_code == 413
    lying = await running.client.post(path, content=b"z" * 5000, headers={"content-length": "10"})
    assert lying.status_code == 413


async def test_per_endpoint_body_cap(running: Running) -> None:
    path = await mint(running, options=EndpointOptions(max_body_bytes=10))
    assert (await running.client.post(path, content=b"x" * 11)).status_code == 413


async def test_compressed_bodies_and_bad_content_length_are_4xx(running: Running) -> None:
    path = await mint(running)
    gz = await running.client.post(path, content=b"\x1f\x8b", headers={"content-encoding": "gzip"})
    assert gz.status_code == 415
    bad = await running.client.post(path, content=b"", headers={"content-length": "abc"})
    assert bad.status_code == 400


async def test_a_content_length_too_long_for_int_is_413(running: Running) -> None:
    """int() refuses more than 4300 digits (a ValueError): that must not become a 500."""
    path = await mint(running)
    response = await running.client.post(path, content=b"", headers={"content-length": "9" * 5000})
    assert response.status_code == 413


async def test_a_client_gone_mid_body_is_a_4xx_and_no_plugin_failure(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    path = await mint(running)
    with caplog.at_level(logging.WARNING):
        sent = await post_then_hang_up(running.app, path, b"ab", None)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_rate_limit_answers_429_with_retry_after(running: Running) -> None:
    path = await mint(running, options=EndpointOptions(rate_limit_per_minute=3))
    statuses = [(await running.client.get(path)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await running.client.get(path)
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"]["code"] == "rate_limited"


async def test_verification_failure_is_401_and_custom_responses_pass_through(running: Running) -> None:
    path = await mint(running, "strict")
    assert (await running.client.post(f"{path}/json", content=b"{}")).status_code == 401
    custom = await running.client.post(f"{path}/json", content=b"{}", headers={"x-custom": "yes"})
    assert custom.status_code == 403 and custom.json() == {"nope": True}
    ok = await running.client.post(f"{path}/json", content=b'{"a": 1}', headers={"x-ok": "yes"})
    assert ok.json() == {"a": 1}
    assert (await running.client.get(f"{path}/open")).text == "open"


async def test_what_the_verifier_established_reaches_the_handler_and_no_log(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    path = await mint(running, "strict")
    ok = await running.client.post(f"{path}/verified", headers={"x-ok": "yes", "x-who": "ana"})
    assert ok.json() == {"verified": {"checked": "ana"}}
    assert "checked" not in repr(Verdict.ok(verified={"checked": "ana"}))  # never in a repr or a log line
    req = Request("POST", "/", "", Headers(), b"", "ep", "u", 0.0, verified="plain")
    assert "plain" not in repr(req)


async def test_malformed_input_is_a_4xx_json_error(running: Running) -> None:
    path = await mint(running, "strict")
    bad = await running.client.post(f"{path}/json", content=b"{not json", headers={"x-ok": "yes"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
    invalid_utf8 = await running.client.post(f"{path}/json", content=b"\xff\xfe", headers={"x-ok": "yes"})
    assert invalid_utf8.status_code == 400


async def test_routing_404_and_405(running: Running) -> None:
    path = await mint(running, "strict")
    assert (await running.client.get(f"{path}/nowhere")).status_code == 404
    response = await running.client.post(f"{path}/items/7", headers={"x-ok": "yes"})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    assert response.json() == {
        "error": {"code": "method_not_allowed", "message": "this route does not accept that method"}
    }
    assert (await running.client.get(f"{path}/items/7", headers={"x-ok": "yes"})).json() == {"item": "7"}


async def test_plugin_crash_is_an_opaque_500_and_undeclared_permission_a_403(running: Running) -> None:
    path = await mint(running, "strict")
    crashed = await running.client.post(f"{path}/crash", headers={"x-ok": "yes"})
    assert crashed.status_code == 500
    assert "secret internals" not in crashed.text
    assert crashed.json()["error"]["code"] == "internal_error"
    denied = await running.client.post(f"{path}/storage", headers={"x-ok": "yes"})
    assert denied.status_code == 403
    assert "storage" in denied.json()["error"]["message"]


async def test_request_log_and_metrics(running: Running) -> None:
    record, url = await running.gateway.endpoints.create("strict", [], {})
    path = running.path(url)
    await running.client.post(f"{path}/json", content=b"{}", headers={"x-ok": "yes", "authorization": "Bearer s3cret"})
    await running.client.post(f"{path}/json", content=b"{}")
    await running.client.get(f"{path}/open")
    for _ in range(100):
        entries = await running.gateway.requests.list(record.id)
        if len(entries) == 3:
            break
        await asyncio.sleep(0.01)
    assert [(e["method"], e["path"], e["status"], e["verdict"]) for e in entries] == [
        ("GET", "/open", 200, "skipped"),
        ("POST", "/json", 401, "failed"),
        ("POST", "/json", 200, "ok"),
    ]
    assert "s3cret" not in json.dumps(entries)
    assert all(e["body"] is None for e in entries)
    metrics = (await running.client.get("/metrics")).text
    assert 'gateway_requests_total{plugin="strict",status="401"} 1' in metrics
    assert 'gateway_request_duration_seconds_count{plugin="strict"} 3' in metrics


async def test_health_and_readiness(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await running.client.get("/healthz")).json() == {"status": "ok"}
    assert (await running.client.get("/readyz")).status_code == 200

    async def down() -> None:
        raise ConnectionError("down")

    monkeypatch.setattr(running.gateway.store, "ping", down)
    assert (await running.client.get("/readyz")).status_code == 503


async def test_unknown_paths_outside_endpoints_are_json_404(running: Running) -> None:
    response = await running.client.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_plugin_storage_is_scoped_to_the_endpoint(running: Running) -> None:
    gateway = running.gateway
    first, _ = await gateway.endpoints.create("echo", [], {})
    second, _ = await gateway.endpoints.create("echo", [], {})
    ctx_a = await gateway.contexts.build(first, echo)
    ctx_b = await gateway.contexts.build(second, echo)
    await ctx_a.storage.set("k", "a")
    assert await ctx_b.storage.get("k") is None
    assert await ctx_a.storage.set_if_absent("once", "1", ttl=60) is True
    assert await ctx_a.storage.set_if_absent("once", "2", ttl=60) is False
    assert await ctx_a.storage.incr("n") == 1


async def test_apps_and_http_need_their_permissions(running: Running) -> None:
    record, _ = await running.gateway.endpoints.create("echo", ["demo"], {})
    ctx = await running.gateway.contexts.build(record, echo)
    from gateway.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        _ = ctx.apps
    with pytest.raises(PermissionDenied):
        _ = ctx.http


async def test_settings_are_encrypted_at_rest(running: Running) -> None:
    record, url = await running.gateway.endpoints.create("echo", [], {"token": "plain-token-value-123"})
    raw = json.dumps(await running.gateway.store.doc_get("endpoints", record.id))
    assert "plain-token-value-123" not in raw
    assert url.split("/e/")[1] not in raw  # the URL token is stored hashed and encrypted
    path = running.path(url)
    assert (await running.client.get(path)).status_code == 401
    ok = await running.client.get(path, headers={"authorization": "Bearer plain-token-value-123"})
    assert ok.status_code == 200


async def test_slow_body_is_cut_by_the_deadline(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, body_timeout=0.2)
    async with running_app(settings, registry=PluginRegistry([echo]), run_workers=False) as running:
        path = await mint(running)

        async def slow() -> AsyncIterator[bytes]:
            yield b"a"
            await asyncio.sleep(1.0)
            yield b"b"

        response = await running.client.post(path, content=slow())
        assert response.status_code == 408
        assert response.json()["error"]["code"] == "request_timeout"


async def test_admin_errors_are_json_too(running: Running) -> None:
    response = await running.client.get("/admin/api/apps")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json()["error"]["message"], str)


def test_http_status_of_every_error_class() -> None:
    from gateway import exceptions as e
    from gateway.http.errors import error_response

    for cls, status in [(e.BadRequest, 400), (e.RequestTimeout, 408), (e.UpstreamTimeout, 504), (e.CircuitOpen, 503)]:
        assert error_response(cls("x")).status_code == status
    assert b"internal error" in bytes(error_response(e.GatewayError("hidden")).body)
    assert error_response(httpx.HTTPError("boom")).status_code == 500


async def test_sending_back_the_mask_as_a_secret_is_refused(running: Running) -> None:
    from gateway.exceptions import ValidationFailed
    from gateway.security.crypto import MASK

    record, url = await running.gateway.endpoints.create("echo", [], {"token": "the-real-token-123"})
    shown = running.gateway.endpoints.public(record)["settings"]["token"]
    assert shown == MASK
    with pytest.raises(ValidationFailed, match="mask"):
        await running.gateway.endpoints.update(record.id, settings={"token": shown})
    ok = await running.client.get(running.path(url), headers={"authorization": "Bearer the-real-token-123"})
    assert ok.status_code == 200  # the real secret is untouched


async def test_a_handler_is_cancelled_when_its_client_leaves() -> None:
    from gateway.exceptions import ClientClosedRequest
    from gateway.http.ingress import Departures

    cancelled = asyncio.Event()

    async def slow_handler() -> Response:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Response.text("never")

    class Leaving:
        async def receive(self) -> dict[str, str]:
            return {"type": "http.disconnect"}

    with pytest.raises(ClientClosedRequest):
        await Departures().run(slow_handler(), Leaving())  # type: ignore[arg-type]
    assert cancelled.is_set()

    class Staying:
        async def receive(self) -> dict[str, str]:
            await asyncio.sleep(60)
            return {"type": "http.disconnect"}

    async def quick() -> Response:
        return Response.text("ok")

    answer = await Departures().run(quick(), Staying())  # type: ignore[arg-type]
    assert answer.body == b"ok"


async def test_one_watch_serves_many_handlers_and_stops_when_they_do() -> None:
    """Handlers that finish at once are never watched; one that runs on is watched and cancelled
    when its client leaves, while the others around it carry on; the ticking stops after."""
    from gateway.exceptions import ClientClosedRequest
    from gateway.http.ingress import Departures
    from gateway.testing.platforms.waiting import wait_until

    departures = Departures()
    leave = asyncio.Event()
    receives: list[str] = []

    class Client:
        def __init__(self, name: str, leaves: bool) -> None:
            self.name, self.leaves = name, leaves

        async def receive(self) -> dict[str, str]:
            receives.append(self.name)
            if self.leaves:
                await leave.wait()
                return {"type": "http.disconnect"}
            await asyncio.sleep(60)
            return {"type": "http.disconnect"}

    async def answer(text: str, wait: asyncio.Event | None = None) -> Response:
        if wait is not None:
            await wait.wait()
        return Response.text(text)

    quick = [await departures.run(answer(f"q{i}"), Client(f"q{i}", leaves=False)) for i in range(20)]  # type: ignore[arg-type]
    assert [r.body for r in quick] == [f"q{i}".encode() for i in range(20)]

    forever, done = asyncio.Event(), asyncio.Event()
    leaving = asyncio.create_task(departures.run(answer("never", forever), Client("leaver", leaves=True)))  # type: ignore[arg-type]
    staying = asyncio.create_task(departures.run(answer("slow", done), Client("stayer", leaves=False)))  # type: ignore[arg-type]
    # Both watched once they ran on.
    await wait_until(lambda: sorted(receives) == ["leaver", "stayer"], lambda: f"watched: {receives}")
    leave.set()
    with pytest.raises(ClientClosedRequest):
        await leaving
    done.set()
    assert (await staying).body == b"slow"
    await wait_until(lambda: departures._ticker is None, lambda: "the watch still ticks")  # nothing runs
    assert not departures._watchers and not departures._left
