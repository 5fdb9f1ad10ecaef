"""`FakeContext`: the plugin contract in memory, with the gateway's rules (permissions, settings
validation, routing and verification through `dispatch`) and apps answered by the simulator."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from gateway.plugin import (
    BadRequest,
    Context,
    Permission,
    PermissionDenied,
    Plugin,
    Request,
    Response,
    Verdict,
    query_input_setting,
)
from gateway.simulator.config import SimulatorConfig
from gateway.testing import FakeContext, FakeSlack, make_request
from tests.support.responses import json_body

pytestmark = pytest.mark.anyio


class Settings(BaseModel):
    token: SecretStr
    query_input: str | None = query_input_setting()


async def verify(request: Request, ctx: Context) -> Verdict:
    if request.headers.get("x-token") == ctx.settings.token.get_secret_value():
        return Verdict.ok()
    if request.headers.get("x-teapot"):
        return Verdict.failed("teapot", Response.text("I'm a teapot", 418))
    return Verdict.failed("wrong token")


plugin = Plugin("demo", settings=Settings, verifier=verify, permissions={Permission.APPS, Permission.HTTP})


@plugin.route("/ask", methods=["POST"])
async def ask(request: Request, ctx: Context) -> Response:
    body = request.json()
    if not isinstance(body, dict) or "q" not in body:
        raise BadRequest("q is missing")
    answer = await ctx.apps.ask(body["q"], user=body.get("user", "u1"), conversation_key=body.get("thread"))
    return Response.json({"answer": answer.text})


@plugin.route("/open", methods=["GET"], verify=False)
async def open_route(request: Request, ctx: Context) -> Response:
    ctx.logger.info("open route called")
    return Response.text("open")


def asked(q: str, thread: str | None = None, user: str = "u1") -> Request:
    body = json.dumps({"q": q, "thread": thread, "user": user}).encode()
    return make_request("POST", "/ask", body=body, headers={"x-token": "t0ken"})


async def test_settings_are_validated_by_the_plugin_model() -> None:
    with pytest.raises(ValidationError):
        FakeContext(plugin, {"token": 42, "query_input": ""})
    ctx = FakeContext(plugin, Settings(token=SecretStr("t0ken")))
    assert ctx.settings.token.get_secret_value() == "t0ken"
    assert (ctx.endpoint.plugin, ctx.endpoint.apps) == ("demo", ("app",))


async def test_dispatch_answers_like_the_gateway() -> None:
    async with FakeContext(plugin, {"token": "t0ken"}) as ctx:
        ok = await ctx.dispatch(asked("hello"))
        assert ok.status == 200 and json_body(ok) == {"answer": "You said: hello"}

        unsigned = await ctx.dispatch(make_request("POST", "/ask", body=b"{}"))
        assert unsigned.status == 401 and json_body(unsigned)["error"]["code"] == "unauthorized"
        teapot = await ctx.dispatch(make_request("POST", "/ask", headers={"x-teapot": "1"}))
        assert (teapot.status, teapot.body) == (418, b"I'm a teapot")

        bad = await ctx.dispatch(make_request("POST", "/ask", body=b"[]", headers={"x-token": "t0ken"}))
        assert bad.status == 400 and json_body(bad)["error"]["message"] == "q is missing"
        missing = await ctx.dispatch(make_request("GET", "/nowhere"))
        assert missing.status == 404
        wrong = await ctx.dispatch(make_request("GET", "/ask"))
        assert wrong.status == 405 and ("allow", "POST") in wrong.headers
        assert (await ctx.dispatch(make_request("GET", "/open"))).body == b"open"  # verify=False


async def test_permissions_are_enforced() -> None:
    ctx = FakeContext(plugin, {"token": "t"})
    for part in ("storage", "jobs"):
        with pytest.raises(PermissionDenied, match="did not declare"):
            getattr(ctx, part)
    assert ctx.apps.names == ("app",) and ctx.callbacks.sent == []


async def test_apps_keep_conversations_per_key_and_user_and_record_calls() -> None:
    config = SimulatorConfig(answer="[[say:first]][[say:second]]", first_token_latency=0, tokens_per_second=0)
    async with FakeContext(plugin, {"token": "t0ken"}, apps={"support": config}) as ctx:
        first = await ctx.apps.ask("[[say:one]][[say:two]]", user="u1", conversation_key="thread-1")
        second = await ctx.apps.ask("again", user="u1", conversation_key="thread-1")
        other = await ctx.apps.ask("[[say:one]][[say:two]]", user="u2", conversation_key="thread-1")
        assert (first.text, second.text, other.text) == ("one", "two", "one")
        calls = ctx.apps.calls
        assert [c.user for c in calls] == ["u1", "u1", "u2"]
        assert calls[0].conversation_id is None and calls[1].conversation_id == first.conversation_id
        assert calls[2].conversation_id is None  # never continued under another user
        await ctx.apps.reset("thread-1", user="u1")
        await ctx.apps.ask("x", user="u1", conversation_key="thread-1")
        assert ctx.apps.calls[-1].conversation_id is None


async def test_a_workflow_app_gets_the_query_in_its_text_input() -> None:
    config = SimulatorConfig(mode="workflow", inputs=(("question", "paragraph", True),), first_token_latency=0)
    async with FakeContext(plugin, {"token": "t"}, apps={"flow": config}) as ctx:
        assert ctx.apps.get().query_input == "question"
        answer = await ctx.apps.ask("what time is it?", user="u1")
        assert "what time is it?" in answer.text
        assert ctx.apps.calls[0].inputs == {"question": "what time is it?"}


async def test_http_refuses_unless_given_a_transport_such_as_a_fake_platform() -> None:
    ctx = FakeContext(plugin, {"token": "t"})
    with pytest.raises(httpx.ConnectError, match="no network"):
        await ctx.http.get("https://slack.com/api/auth.test")

    slack = FakeSlack()
    transport = httpx.ASGITransport(app=slack.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://slack.test") as http:
        ctx = FakeContext(plugin, {"token": "t"}, http=http)
        auth = {"authorization": f"Bearer {slack.token}"}
        posted = await ctx.http.post("/api/chat.postMessage", json={"channel": "C1", "text": "hi"}, headers=auth)
    assert posted.json()["ok"] is True
    assert [(c.method, c.params["text"]) for c in slack.calls] == [("chat.postMessage", "hi")]


async def test_callbacks_are_recorded_once_per_message_id() -> None:
    ctx = FakeContext(plugin, {"token": "t"})
    with pytest.raises(BadRequest):
        await ctx.callbacks.check("ftp://example.com/hook")
    first = await ctx.callbacks.send("https://example.com/hook", "answer.completed", {"a": 1}, msg_id="m1")
    assert await ctx.callbacks.send("https://example.com/hook", "answer.completed", {"a": 2}, msg_id="m1") == first
    [sent] = ctx.callbacks.sent
    assert sent.json()["type"] == "answer.completed" and sent.json()["data"] == {"a": 1}


async def test_the_logger_names_the_plugin_and_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    ctx = FakeContext(plugin, {"token": "t"})
    with caplog.at_level(logging.INFO, logger="gateway.plugins.demo"):
        await ctx.dispatch(make_request("GET", "/open"))
    [record] = caplog.records
    assert record.getMessage() == "open route called" and record.endpoint_id == "ep_test"  # type: ignore[attr-defined]
