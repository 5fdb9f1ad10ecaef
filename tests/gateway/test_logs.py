"""The log (issue 11, items 7 and 8): no URL secrets at any level, no forged lines, JSON lines.

The live tests run `dify-gateway serve` itself, so they see the logging configuration it
installs, and drive real outbound calls (Discord follow-ups, a Slack response_url, a signed
callback, the webhook plugin calling its own URL) before grepping everything it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.logs import JsonFormatter, TextFormatter, configure_logging, escape_controls, redact_url, redact_urls
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.testing import FakeDiscord, FakeSlack
from tests.support import discord_interactions as discord
from tests.support.gateway import ADMIN_TOKEN, admin_headers, base_url, listening_socket, live_server
from tests.support.processes import gateway_env, start_gateway, stop, wait_healthy
from tests.support.webhooks import signed_headers as webhook_headers

FORGED = "2026-01-01 00:00:00,000 ERROR gateway.admin: FORGED"


# -- escaping and redaction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
        ("a\nb\r\nc\td", "a\\nb\\r\\nc\\td"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),
        ("line\u2028sep\u2029para", "line\\u2028sep\\u2029para"),
        ("bidi\u202eevil\u2066x\u200f", "bidi\\u202eevil\\u2066x\\u200f"),
    ],
)
def test_escape_controls(text: str, escaped: str) -> None:
    assert escape_controls(text) == escaped


DISCORD_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OTpBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWg"
SLACK_SECRET_PATH = "T0001/1234567890/abcdEFGHijklMNOPqrstUVWX"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"https://discord.com/api/v10/webhooks/100000000000000001/{DISCORD_TOKEN}/messages/@original",
            "https://discord.com/api/v10/webhooks/…/…/messages/@original",
        ),
        (f"https://hooks.slack.com/commands/{SLACK_SECRET_PATH}", "https://hooks.slack.com/commands/…/…/…"),
        ("https://slack.com/api/chat.postMessage", "https://slack.com/api/chat.postMessage"),
        ("https://hooks.example.com:8443/cb?token=hunter2#frag", "https://hooks.example.com:8443/cb?…"),
        ("https://user:pw@hooks.example.com/in/x7Hq9Zr2Kp4W", "https://hooks.example.com/in/…"),
        ("http://gw.test/e/Xq3abcdefghijklmnopqrstu.k9PQRSTUV/hook", "http://gw.test/e/"),
        ("http://[2001:db8::1]:80/a", "http://[2001:db8::1]:80/a"),
        ("https://api.dify.ai/v1/chat-messages", "https://api.dify.ai/v1/chat-messages"),
        ("https://host:notaport/secret", "https://…"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url).startswith(shown)
    for secret in (DISCORD_TOKEN, "abcdEFGHijklMNOPqrstUVWX", "hunter2", "pw@", "x7Hq9Zr2Kp4W", "Xq3abc", "secret"):
        assert secret not in redact_url(url)


def test_redact_url_hashes_endpoint_tokens() -> None:
    shown = redact_url("http://gw.test/e/Xq3abcdefghijklmnopqrstu.k9PQRSTUV/hook")
    assert shown.endswith("…/hook") and len(shown.split("/")[4]) == 9  # 8 hex + "…"


def test_redact_urls_inside_text() -> None:
    text = f'HTTP Request: POST https://discord.com/api/webhooks/1/{DISCORD_TOKEN} "HTTP/1.1 200 OK"'
    assert redact_urls(text) == 'HTTP Request: POST https://discord.com/api/webhooks/…/… "HTTP/1.1 200 OK"'
    assert redact_urls("no urls here") == "no urls here"


# -- the formatters -----------------------------------------------------------------------------


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("gateway.access", logging.INFO, __file__, 1, msg, args, exc_info)


def raised(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_text_lines_cannot_be_forged_by_arguments_messages_or_exceptions() -> None:
    formatter = TextFormatter()
    path = f"/nothing\n{FORGED}\x1b[2J"
    for line in (
        formatter.format(record('"GET %s" 404', path)),
        formatter.format(record(f"GET {path}")),
        formatter.format(record("failed", exc=raised(f"bad\n{FORGED}\x1b[2J"))),
    ):
        first, *rest = line.split("\n")
        assert FORGED in first or rest
        assert not any(part.startswith(FORGED) for part in line.splitlines())
        assert all(part.startswith("    ") for part in rest)  # a traceback: indented, one record
        assert "\x1b" not in line


def test_text_tracebacks_lose_their_url_secrets() -> None:
    line = TextFormatter().format(record("failed", exc=raised(f"for url https://discord.com/x/{DISCORD_TOKEN}")))
    assert "Traceback" in line and DISCORD_TOKEN not in line


def test_json_is_one_object_per_line() -> None:
    formatter = JsonFormatter()
    line = formatter.format(record("GET %s \u2028 \x85", f"/x\n{FORGED}", exc=raised("boom\nagain")))
    assert "\n" not in line and "\u2028" not in line and "\x85" not in line
    document = json.loads(line)
    assert set(document) == {"time", "level", "logger", "message", "exception"}
    assert document["message"] == f"GET /x\n{FORGED} \u2028 \x85"  # intact once decoded
    assert document["level"] == "INFO" and document["logger"] == "gateway.access"
    assert document["time"].endswith("+00:00")
    assert "ValueError: boom\nagain" in document["exception"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    names = ("httpx", "httpcore", "hpack")
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("level", ["info", "debug"])
def test_configured_http_client_loggers(level: str) -> None:
    out = io.StringIO()
    configure_logging(level, "text", out)
    url = httpx.URL(f"https://discord.com/api/webhooks/1/{DISCORD_TOKEN}/messages/@original")
    logging.getLogger("httpx").info('HTTP Request: %s %s "%s %d %s"', "PATCH", url, "HTTP/1.1", 200, "OK")
    logging.getLogger("httpcore.http11").debug("receive_response_headers.complete return_value=%r", ["set-cookie"])
    logging.getLogger("gateway.test").info("still here")
    text = out.getvalue()
    assert DISCORD_TOKEN not in text and "set-cookie" not in text
    assert "still here" in text
    assert ("discord.com/api/webhooks/…/…/messages/@original" in text) is (level == "debug")


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_refuses_unknown_values() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml")
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "text")


# -- the real thing: `dify-gateway serve` with real outbound calls ------------------------------


@dataclass
class Secrets:
    """Everything that must not reach the log."""

    discord_token: str = "itok-" + secrets.token_urlsafe(48)
    slack_response: str = "resp" + secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")
    callback_path: str = "cb" + secrets.token_hex(12)
    callback_query: str = "q" + secrets.token_hex(12)

    def all(self) -> list[str]:
        return [self.discord_token, self.slack_response, self.callback_path, self.callback_query, ADMIN_TOKEN]


class CallbackReceiver:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            self.received.append(await request.body())
            return Response(status_code=204)

        return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


@contextlib.asynccontextmanager
async def served_gateway(tmp_path: Path, level: str, log_format: str) -> AsyncIterator[tuple[str, Path]]:
    sock = listening_socket()
    base = base_url(sock)
    log = tmp_path / "gateway.log"
    env = gateway_env(
        GATEWAY_STORE=f"sqlite:///{tmp_path / 'gateway.db'}",
        GATEWAY_PUBLIC_URL=base,
        GATEWAY_LOG_LEVEL=level,
        GATEWAY_LOG_FORMAT=log_format,
        GATEWAY_CALLBACK_ALLOW_HTTP="true",
        GATEWAY_CALLBACK_ALLOW_HOSTS="127.0.0.1",
    )
    with sock, log.open("wb") as sink:
        # A file, not a pipe: a DEBUG log would fill a pipe nobody reads and stall the server.
        proc = start_gateway(env, sock, output=sink)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                await wait_healthy(client, base, proc)
            yield base, log
        finally:
            stop(proc)


async def create(client: httpx.AsyncClient, base: str, plugin: str, settings: dict[str, Any]) -> dict[str, Any]:
    body = {"plugin": plugin, "apps": ["support"], "settings": settings}
    created = await client.post(f"{base}/admin/api/endpoints", json=body, headers=admin_headers())
    assert created.status_code == 201, created.text
    endpoint: dict[str, Any] = created.json()
    return endpoint


async def wait_until(condition: Any, what: str) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def drive_every_secret_bearing_call(base: str, client: httpx.AsyncClient, found: Secrets) -> list[str]:
    """Discord follow-ups, a Slack response_url, a callback and a self-call; the endpoint URLs."""
    fake_discord, fake_slack, receiver = FakeDiscord(), FakeSlack(token="xoxb-test"), CallbackReceiver()
    config = SimulatorConfig(first_token_latency=0.01, tokens_per_second=200)
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(fake_discord.app()) as discord_base,
        live_server(fake_slack.app()) as slack_base,
        live_server(receiver.app()) as receiver_base,
    ):
        fake_slack.base = slack_base
        app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "chat"}
        assert (await client.post(f"{base}/admin/api/apps", json=app, headers=admin_headers())).status_code == 201

        key = discord.new_key()
        on_discord = await create(
            client,
            base,
            "discord",
            {
                "application_id": discord.APPLICATION_ID,
                "public_key": discord.public_key_hex(key),
                "api_base_url": f"{discord_base}/api/v10",
            },
        )
        interaction = discord.body_of(discord.command("ask", "hello there", token=found.discord_token))
        headers = discord.signed_headers(key, interaction)
        assert (await client.post(on_discord["url"], content=interaction, headers=headers)).status_code == 200
        await wait_until(lambda: fake_discord.visible(found.discord_token), "the Discord answer")

        signing_secret = "8f742231b10e8888abcd99yyyzzz85a5"
        on_slack = await create(
            client, base, "slack", {"signing_secret": signing_secret, "api_base_url": fake_slack.api_url}
        )
        form = {
            "team_id": "T1",
            "channel_id": "C1",
            "user_id": "U1",
            "command": "/ask",
            "text": "hello there",
            "response_url": fake_slack.response_url(found.slack_response),
            "trigger_id": "1.2",
        }
        raw = urlencode(form).encode()
        ts = str(int(time.time()))
        signature = SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=raw)
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": ts,
            "x-slack-signature": signature or "",
        }
        assert (await client.post(on_slack["url"], content=raw, headers=headers)).status_code == 200
        await wait_until(lambda: fake_slack.responses.get(found.slack_response), "the Slack response_url answer")

        on_webhook = await create(client, base, "webhook", {})
        callback = f"{receiver_base}/{found.callback_path}?sig={found.callback_query}"
        body = json.dumps({"query": "hello", "user": "u1", "callback_url": callback}).encode()
        sent = await client.post(
            on_webhook["url"], content=body, headers=webhook_headers(on_webhook["secrets"]["secret"], body)
        )
        assert sent.status_code == 202, sent.text
        await wait_until(lambda: receiver.received, "the callback")

        called = await client.post(
            f"{base}/admin/api/endpoints/{on_webhook['id']}/actions/call",
            json={"args": {"query": "hi"}},
            headers=admin_headers(),
        )
        assert called.status_code == 200, called.text

        forged = await client.get(f"{base}/nothing%0a{FORGED.replace(' ', '%20')}%1b[2J%e2%80%a8")
        assert forged.status_code == 404
    return [on_discord["url"], on_slack["url"], on_webhook["url"]]


@pytest.mark.live
@pytest.mark.anyio
@pytest.mark.parametrize(("level", "log_format"), [("debug", "text"), ("info", "text"), ("debug", "json")])
async def test_serve_logs_no_secret_and_no_forged_line(tmp_path: Path, level: str, log_format: str) -> None:
    found = Secrets()
    async with served_gateway(tmp_path, level, log_format) as (base, log), httpx.AsyncClient(timeout=30) as client:
        urls = await drive_every_secret_bearing_call(base, client, found)
    text = log.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert "nothing" in text  # the access log saw the forged request
    for secret in [*found.all(), *(url.rsplit("/e/", 1)[1] for url in urls)]:
        assert secret not in text, f"{secret[:12]}… is in the log"
    assert "\x1b" not in text and "\u2028" not in text
    assert not [line for line in lines if line.startswith(FORGED)]
    if log_format == "json":
        assert all(json.loads(line)["message"] is not None for line in lines if line.startswith("{"))
        assert not [line for line in lines if line.startswith("20")]  # nothing bypassed the formatter
    if level == "debug":
        assert "HTTP Request: PATCH http://127.0.0.1:" in text  # the outbound lines are there, redacted
    else:
        assert "HTTP Request" not in text
