"""Compatibility with the `dify_plugin` SDKs that published plugins run on, and with the patterns of
Dify's own endpoint plugins (slack_bot, openai_compatible, wecom_bot), written here as plugins of
our own so a regression is caught without their code (`scripts/check_official_plugins.py` runs
theirs, unmodified, against a checkout).

The SDK's HTTP parser changed: up to 0.10.0 it split the bytes itself (0.5 used dpkt), since 0.10.1
it is h11, which refuses a request without `Host`, with two `Host` or `Content-Type` headers or with
a header value that is not UTF-8. The gateway sends bytes every generation parses, and answers a
request that none could take with its own 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpx
import openai
import pytest
from slack_sdk.signature import SignatureVerifier

from gateway.difyplugins.package import read_directory
from gateway.difyplugins.runtime import PluginSpec
from gateway.difyplugins.runtime.rawhttp import raw_request
from gateway.plugin import Headers, Request
from gateway.records.apps import AppIn
from gateway.testing.simulator import RunningSimulator
from tests import test_difyruntime_endpoints as endpoints
from tests.support.difyplugins import ECHO_ENDPOINTS, Endpoint, Permission, write_plugin
from tests.test_difyruntime_endpoints import ECHO_SETTINGS, Live, live_gateway

pytestmark = [pytest.mark.anyio, pytest.mark.live]

# The runtime tests' fixtures; `live` serves this module's `plugins`.
python_for_plugins, venv_dir, live = endpoints.python_for_plugins, endpoints.venv_dir, endpoints.live

# The SDKs published endpoint plugins pin: what Dify's official packages export from their uv.lock
# today, and the range their earlier releases pinned (a dpkt-based HTTP parser).
OLDER_SDKS = ("dify_plugin==0.9.0", "dify_plugin>=0.5,<0.6")
SIGNING_SECRET = "slack-signing-secret"

COMPAT_ENDPOINTS = (
    Endpoint(
        "args",
        "/args",
        "GET",
        """
        return Response(
            json.dumps({"q": r.args.get("q"), "query": r.query_string.decode(), "host": r.host}),
            content_type="application/json",
        )
        """,
    ),
    Endpoint(
        "cookies",
        "/cookies",
        "GET",
        """
        response = Response("two cookies", content_type="text/plain")
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response
        """,
    ),
    Endpoint(
        "environment",
        "/environment",
        "GET",
        """
        return Response(json.dumps(dict(os.environ)), content_type="application/json")
        """,
    ),
    Endpoint(
        "midstream",
        "/midstream",
        "GET",
        """
        def chunks():
            yield "first;"
            raise RuntimeError("broke after the first chunk")

        return Response(chunks(), content_type="text/plain")
        """,
    ),
    Endpoint(
        "unicode_header",
        "/unicode-header",
        "GET",
        """
        headers = {"X-Name": "caf\\u00e9 \\u2615", "X Not A Token": "1", "X-N\\u00e4me": "2"}
        return Response("named", headers=headers, content_type="text/plain")
        """,
    ),
)

# slack_bot: settings with a secret, a boolean and an app-selector; Slack's retries acknowledged at
# once; `url_verification`; an app_mention answered by the app (blocking), as JSON, at the bare URL.
SLACK_STYLE = Endpoint(
    "slack",
    "/",
    "POST",
    """
    retry_num = r.headers.get("X-Slack-Retry-Num")
    if not settings.get("allow_retry") and (
        r.headers.get("X-Slack-Retry-Reason") == "http_timeout" or (retry_num is not None and int(retry_num) > 0)
    ):
        return Response(status=200, response="ok")
    data = r.get_json()
    if data.get("type") == "url_verification":
        return Response(
            response=json.dumps({"challenge": data.get("challenge")}), status=200, content_type="application/json"
        )
    event = data.get("event") or {}
    if data.get("type") == "event_callback" and event.get("type") == "app_mention":
        message = event.get("text", "").split("> ", 1)[-1]
        response = self.session.app.chat.invoke(
            app_id=settings["app"]["app_id"], query=message, inputs={}, response_mode="blocking"
        )
        posted = {"channel": event.get("channel"), "text": response.get("answer", ""), "token": settings["bot_token"]}
        return Response(status=200, response=json.dumps(posted), content_type="application/json")
    return Response(status=200, response="ok")
    """,
)

# openai_compatible: an app-selector named `app_id` (with a scope), a select, the key checked
# against `Authorization`; a streamed answer whose app call happens inside the generator (after the
# head is sent), with `Transfer-Encoding: chunked` set by the plugin; a blocking one as text/html.
OPENAI_STYLE = Endpoint(
    "openai",
    "/chat/completions",
    "POST",
    """
    if r.headers.get("Authorization") != f"Bearer {settings.get('api_key')}":
        return Response(json.dumps({"message": "Unauthorized"}), status=401, content_type="application/json")
    app_id = settings.get("app_id", {}).get("app_id", "")
    data = r.get_json()
    query = [m for m in data.get("messages", []) if m.get("role") == "user"][-1]["content"]

    def chunk(delta, finish=None):
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return "data: " + json.dumps(
            {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [choice]}
        ) + "\\n\\n"

    if data.get("stream", False):
        def generator():
            for event in self.session.app.chat.invoke(
                app_id=app_id, inputs={}, query=query, response_mode="streaming", conversation_id=""
            ):
                if event.get("event") in ("message", "agent_message"):
                    yield chunk({"role": "assistant", "content": event.get("answer", "")})
                elif event.get("event") == "message_end":
                    yield chunk({}, "stop")
            yield "data: [DONE]\\n\\n"

        return Response(
            generator(),
            status=200,
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "Transfer-Encoding": "chunked"},
        )
    response = self.session.app.chat.invoke(
        app_id=app_id, inputs={}, query=query, response_mode="blocking", conversation_id=""
    )
    message = {"role": "assistant", "content": response.get("answer", "")}
    completion = {
        "id": "chatcmpl-" + response.get("id", "none"),
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    return Response(json.dumps(completion), status=200, content_type="text/html")
    """,
)

# wecom_bot: a GET and a POST on one path; query arguments; `get_json(force=True)`; storage of
# bytes to recognise a repeated message; the SDK's `plugin_logger_handler` for its log lines.
WECOM_VERIFY = Endpoint(
    "wecom_verify",
    "/wecom",
    "GET",
    """
    return Response(status=200, response=r.args.get("echostr", ""))
    """,
)
WECOM_MESSAGE = Endpoint(
    "wecom_message",
    "/wecom",
    "POST",
    """
    import logging

    from dify_plugin.config.logger_format import plugin_logger_handler

    logger = logging.getLogger("wecom-style")
    logger.setLevel(logging.DEBUG)
    if plugin_logger_handler not in logger.handlers:
        logger.addHandler(plugin_logger_handler)
    body = r.get_json(force=True)
    key = f"wecom_msg_{body['msgid']}"
    if self.session.storage.exist(key):
        logger.info("duplicate message %s", body["msgid"])
        stored = self.session.storage.get(key).decode("utf-8")
        answer = json.dumps({"finish": False, "stored": stored})
        return Response(status=200, response=answer, mimetype="application/json")
    self.session.storage.set(key, b"processing")
    answer = self.session.app.chat.invoke(
        app_id=settings["app"]["app_id"], query=body["text"], inputs={}, response_mode="blocking"
    ).get("answer")
    self.session.storage.set(key, answer.encode("utf-8"))
    logger.info("answered message %s for nonce %s", body["msgid"], r.args.get("nonce"))
    return Response(status=200, response=json.dumps({"finish": True, "content": answer}), mimetype="application/json")
    """,
)
PATTERNS_SETTINGS: list[dict[str, Any]] = [
    {"name": "bot_token", "type": "secret-input", "required": True, "label": {"en_US": "Bot Token"}},
    {"name": "allow_retry", "type": "boolean", "required": False, "default": False, "label": {"en_US": "Retry"}},
    {"name": "app", "type": "app-selector", "required": True, "label": {"en_US": "App"}},
    {"name": "api_key", "type": "secret-input", "required": True, "label": {"en_US": "API key"}},
    {"name": "app_id", "type": "app-selector", "scope": "chat", "required": True, "label": {"en_US": "App"}},
    {
        "name": "memory_mode",
        "type": "select",
        "required": True,
        "options": [
            {"value": "last_user_message", "label": {"en_US": "Last User Message"}},
            {"value": "all_messages", "label": {"en_US": "All Messages"}},
        ],
        "label": {"en_US": "Memory Mode"},
    },
]


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PluginSpec]:
    root = tmp_path_factory.mktemp("compat-plugins")
    compat = write_plugin(root, "compat", COMPAT_ENDPOINTS)
    patterns = write_plugin(
        root,
        "patterns",
        (SLACK_STYLE, OPENAI_STYLE, WECOM_VERIFY, WECOM_MESSAGE),
        permission=Permission(app=True, storage=1048576),
        settings=PATTERNS_SETTINGS,
    )
    specs = (PluginSpec.from_package(read_directory(d), d) for d in (compat, patterns))
    return {spec.key: spec for spec in specs}


async def _compat(live: Live) -> str:
    _, url = await live.gateway.endpoints.create("tests/compat", [], {})
    return live.at(url)


async def _raw(url: str, request: bytes) -> tuple[int, bytes]:
    """Send `request` (the request line's target is taken from `url`) over a plain socket; (status, body)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request.replace(b"{path}", parts.path.encode()))
        await writer.drain()
        answer = await reader.read()  # HTTP/1.0 and `Connection: close`: the server closes
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# -- requests every SDK generation parses ------------------------------------------------------------


async def test_a_request_without_host_reaches_the_plugin_with_the_endpoints_host(live: Live) -> None:
    url = await _compat(live)
    status, body = await _raw(url, b"GET {path}/args?q=1 HTTP/1.0\r\n\r\n")  # HTTP/1.0 may leave Host out
    assert status == 200, body
    assert json.loads(body)["host"] == urlsplit(live.gateway.settings.public_url).netloc


def test_bytes_of_the_query_that_may_not_travel_raw_are_percent_encoded() -> None:
    """An ASGI server may hand over raw non-ASCII bytes in the query (uvicorn refuses them): sent raw,
    the SDK up to 0.10.0 decodes the request line and hands the plugin latin-1 bytes back."""
    request = Request(
        method="GET",
        path="/args",
        query_string=b"q=caf\xc3\xa9 x&y=%20z".decode("latin-1"),  # as the ASGI scope gives it
        headers=Headers([("host", "gw.example")]),
        body=b"",
        endpoint_id="ep_1",
        endpoint_url="http://gw.example/e/t",
        received_at=0.0,
    )
    line = raw_request(request).split(b"\r\n", 1)[0]
    assert line == b"GET /args?q=caf%C3%A9%20x&y=%20z HTTP/1.1"  # what was encoded stays as the caller wrote it


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Type", "text/plain"), ("Content-Type", "application/json")],
        [("Host", "other.example")],  # a second Host (the client sends its own too)
        [("X-Custom", b"\xff\xfe")],  # not UTF-8
    ],
    ids=["two-content-types", "two-hosts", "not-utf8"],
)
async def test_a_request_the_sdk_cannot_parse_is_the_gateways_400(
    live: Live, headers: list[tuple[str, str | bytes]]
) -> None:
    url = await _compat(live)
    extra = b"".join(
        name.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n" for name, v in headers
    )
    request = b"GET {path}/args HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n" + extra + b"\r\n"
    status, body = await _raw(url, request)
    assert status == 400, body
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert live.gateway.dify_runtime.status("tests/compat").state == "stopped"  # never started for it


async def test_a_response_header_outside_latin1_goes_out_as_utf8_and_bad_names_are_dropped(live: Live) -> None:
    url = await _compat(live)
    response = await live.client.get(url + "/unicode-header")
    assert response.status_code == 200, response.text
    raw = {name.lower(): value for name, value in response.headers.raw}
    assert raw[b"x-name"] == "caf\u00e9 \u2615".encode()  # UTF-8 bytes, as Dify's daemon writes them
    assert b"x not a token" not in raw and not any(name.startswith(b"x-n\xc3") for name in raw)  # not tokens: left out


async def test_an_exception_mid_stream_is_logged_with_the_plugins_traceback(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """Since 0.10 the SDK sends the traceback of an exception it did not catch itself (one raised while
    a generator body is produced): the operator gets it, the caller sees the stream end."""
    url = await _compat(live)
    with caplog.at_level(logging.ERROR, logger="gateway.plugins.tests/compat"):
        response = await live.client.get(url + "/midstream")
    assert response.status_code == 200 and response.text == "first;"
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "gateway.plugins.tests/compat")
    assert "raised RuntimeError: broke after the first chunk" in logged
    assert 'endpoints/midstream.py", line' in logged and "Traceback (most recent call last)" in logged


async def test_the_plugin_process_gets_the_outbound_proxy_but_no_gateway_setting(
    tmp_path: Path,
    venv_dir: Path,
    python_for_plugins: tuple[str, str],
    plugins: dict[str, PluginSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dify's daemon hands its plugins HTTP_PROXY, HTTPS_PROXY and NO_PROXY (slack_bot posts to
    slack.com, the knowledge plugins call AWS and LlamaCloud): behind an egress proxy they need it."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1,.internal")
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())  # read by the gateway's own clients too
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "admin-" + "s" * 40)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-gateways-own")
    async with live_gateway(tmp_path, venv_dir, python_for_plugins[0], plugins) as running:
        url = await _compat(running)
        environment = (await running.client.get(url + "/environment")).json()
    assert environment["HTTPS_PROXY"] == "http://proxy.internal:3128"
    assert environment["no_proxy"] == "localhost,127.0.0.1,.internal"
    assert environment["SSL_CERT_FILE"] == certifi.where()
    assert not any(name.startswith("GATEWAY_") for name in environment)
    assert "AWS_SECRET_ACCESS_KEY" not in environment


async def test_repeated_response_headers_are_folded_by_the_sdk(live: Live) -> None:
    """The SDK sends `dict(response.headers.items())` (0.5 to 0.10.2): of two `Set-Cookie`s only the
    last leaves the plugin, in Dify as here. Should the SDK ever send them all, this fails and the
    relay (which writes a list of values as one header line each) passes them on."""
    url = await _compat(live)
    response = await live.client.get(url + "/cookies")
    assert response.status_code == 200
    assert response.headers.get_list("set-cookie") == ["b=2"]


# -- the patterns of Dify's official endpoint plugins -----------------------------------------------


async def _patterns(live: Live, simulator: RunningSimulator) -> str:
    app = {"name": "assistant", "base_url": simulator.base_url, "api_key": simulator.api_key, "mode": "chat"}
    await live.gateway.apps.add(AppIn.model_validate(app))
    settings = {"bot_token": "xoxb-1", "api_key": "sk-good", "memory_mode": "last_user_message"}
    _, url = await live.gateway.endpoints.create("tests/patterns", ["assistant"], settings)
    return live.at(url)


async def _slack(client: httpx.AsyncClient, url: str, payload: dict[str, Any], **headers: str) -> httpx.Response:
    body = json.dumps(payload)
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body) or ""
    signed = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    return await client.post(url, content=body, headers={"Content-Type": "application/json", **signed, **headers})


async def test_a_slack_style_bot_answers_at_the_bare_endpoint_url(live: Live, dify_simulator: RunningSimulator) -> None:
    url = await _patterns(live, dify_simulator)
    challenge = await _slack(live.client, url, {"type": "url_verification", "challenge": "c-1"})
    assert challenge.status_code == 200 and challenge.json() == {"challenge": "c-1"}
    retry = await _slack(live.client, url, {"type": "event_callback"}, **{"X-Slack-Retry-Num": "1"})
    assert retry.text == "ok"
    mention = {"type": "event_callback", "event": {"type": "app_mention", "text": "<@U1> hi bot", "channel": "C9"}}
    answered = await _slack(live.client, url, mention)
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"channel": "C9", "text": "You said: hi bot", "token": "xoxb-1"}


async def test_an_openai_style_endpoint_answers_the_openai_client(live: Live, dify_simulator: RunningSimulator) -> None:
    url = await _patterns(live, dify_simulator)
    async with openai.AsyncOpenAI(base_url=url, api_key="sk-good", max_retries=0) as api:
        reply = await api.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content == "You said: hello"
        stream = await api.chat.completions.create(model="m", messages=[{"role": "user", "content": "go"}], stream=True)
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream]
        assert "".join(parts) == "You said: go" and len(parts) > 2
    async with openai.AsyncOpenAI(base_url=url, api_key="sk-bad", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


async def test_a_wecom_style_bot_keeps_storage_and_logs_under_its_name(
    live: Live, dify_simulator: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    url = await _patterns(live, dify_simulator) + "/wecom"
    verified = await live.client.get(url, params={"echostr": "abc+/=", "nonce": "n1"})
    assert verified.status_code == 200 and verified.text == "abc+/="
    with caplog.at_level(logging.INFO, logger="gateway.plugins.tests/patterns"):
        first = await live.client.post(url, params={"nonce": "n1"}, content=json.dumps({"msgid": "m1", "text": "yo"}))
        assert first.json() == {"finish": True, "content": "You said: yo"}
        again = await live.client.post(url, params={"nonce": "n2"}, content=json.dumps({"msgid": "m1", "text": "yo"}))
        assert again.json() == {"finish": False, "stored": "You said: yo"}
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.plugins.tests/patterns"]
    assert any("answered message m1 for nonce n1" in line for line in logged), logged
    assert any("duplicate message m1" in line for line in logged), logged


# -- the SDKs published plugins pin ------------------------------------------------------------------


@pytest.mark.parametrize("requirement", OLDER_SDKS)
async def test_the_echo_plugin_runs_on_the_sdks_published_plugins_pin(
    tmp_path: Path, venv_dir: Path, python_for_plugins: tuple[str, str], requirement: str
) -> None:
    directory = write_plugin(
        tmp_path / "src", "echo_old", ECHO_ENDPOINTS, settings=ECHO_SETTINGS, requirements=requirement + "\n"
    )
    spec = PluginSpec.from_package(read_directory(directory), directory)
    (tmp_path / "gw").mkdir()
    async with live_gateway(tmp_path / "gw", venv_dir, python_for_plugins[0], {spec.key: spec}) as live:
        _, url = await live.gateway.endpoints.create("tests/echo_old", [], {"token": "t0ken"})
        echoed = await live.client.post(
            live.at(url) + "/echo/a/b?z=1&a=%20two", content=b"hi", headers={"X-Custom": "k"}
        )
        assert echoed.status_code == 200, echoed.text
        body = echoed.json()
        assert (body["rest"], body["query"], body["header"], body["body"]) == ("a/b", "z=1&a=%20two", "k", "hi")
        assert body["settings"] == {"token": "t0ken", "mode": "a", "loud": False}
        async with live.client.stream("GET", live.at(url) + "/stream?n=3") as streamed:
            assert streamed.status_code == 201
            chunks = [chunk async for chunk in streamed.aiter_text()]
        assert "".join(chunks) == "chunk-0;chunk-1;chunk-2;"
        failed = await live.client.post(live.at(url) + "/boom")
        assert failed.status_code == 502 and "hunter2" not in failed.text
        no_host = await _raw(live.at(url), b"GET {path}/ping HTTP/1.0\r\n\r\n")
        assert no_host == (200, b"pong")
