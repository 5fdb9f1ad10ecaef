"""Table tests of what a delivery asks for (events, slash commands), the settings and the manifest."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from slack_sdk.signature import SignatureVerifier

from endpoints.slack.events import SlackTrigger, SlashCommand, classify, parse_command
from endpoints.slack.manifest import build_manifest
from endpoints.slack.settings import SlackSettings
from endpoints.slack.verify import is_ssl_check, verify
from gateway.clock import FakeClock
from gateway.plugin import Headers, Request


def envelope(**event: Any) -> dict[str, Any]:
    base = {"type": "message", "user": "U1", "text": "hi", "ts": "2.0", "channel": "C1", "channel_type": "channel"}
    return {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": "Ev1",
        "event": {**base, **event},
        "authorizations": [{"user_id": "UBOT", "is_bot": True}],
    }


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({"type": "app_mention", "text": "<@UBOT> hi"}, "mention"),
        ({"type": "app_mention", "thread_ts": "1.0"}, "mention"),
        ({"channel_type": "im", "channel": "D1"}, "dm"),
        ({"thread_ts": "1.0"}, "thread"),
        ({"thread_ts": "1.0", "channel_type": "group"}, "thread"),
        ({"thread_ts": "1.0", "text": "<@UBOT> again"}, "a mention in a thread"),
        ({"thread_ts": "2.0"}, "outside a thread"),  # the thread's parent itself
        ({}, "outside a thread"),
        ({"bot_id": "B1"}, "a bot's message"),
        ({"subtype": "bot_message"}, "a bot's message"),
        ({"subtype": "message_changed"}, "subtype 'message_changed'"),
        ({"subtype": "channel_join", "channel_type": "im"}, "subtype 'channel_join'"),
        ({"user": "UBOT", "channel_type": "im"}, "own message"),
        ({"user": None}, "missing"),
        ({"channel": ""}, "missing"),
        ({"type": "reaction_added"}, "event type 'reaction_added'"),
    ],
)
def test_classify(changes: dict[str, Any], outcome: str) -> None:
    result = classify(envelope(**changes))
    if isinstance(result, SlackTrigger):
        assert result.kind == outcome
    else:
        assert outcome in result


def test_classify_refuses_odd_envelopes() -> None:
    assert "envelope type" in str(classify({"type": "url_verification"}))
    assert classify({"type": "event_callback", "event": "x", "event_id": "E"}) == "no event or event_id"
    no_id = envelope()
    del no_id["event_id"]
    assert classify(no_id) == "no event or event_id"
    no_team = envelope(channel_type="im")
    del no_team["team_id"]
    assert "missing" in str(classify(no_team))
    no_team["event"]["team"] = "T9"
    assert isinstance(trigger := classify(no_team), SlackTrigger) and trigger.team == "T9"


def test_a_trigger_knows_its_thread_conversation_and_user() -> None:
    trigger = classify(envelope(type="app_mention", ts="5.5", thread_ts="4.4", text=None))
    assert isinstance(trigger, SlackTrigger)
    assert trigger.thread_ts == "4.4" and trigger.text == ""
    assert trigger.conversation_key == "slack:T1:C1:4.4"
    assert trigger.dify_user == "slack:T1:U1"
    assert trigger.bot_user_id == "UBOT" and not trigger.is_dm
    assert SlackTrigger.from_payload(trigger.to_payload()) == trigger
    top = classify(envelope(type="app_mention", ts="5.5"))
    assert isinstance(top, SlackTrigger) and top.thread_ts == "5.5"  # a top-level mention opens a thread


def test_without_authorizations_the_bot_is_unknown_until_the_job_asks() -> None:
    body = envelope(type="app_mention")
    body["authorizations"] = [{"user_id": "U7", "is_bot": False}, "junk"]
    trigger = classify(body)
    assert isinstance(trigger, SlackTrigger) and trigger.bot_user_id is None


@pytest.mark.parametrize("authorizations", [5, True, 1.5])
def test_authorizations_that_are_not_a_list_mean_the_bot_is_unknown(authorizations: object) -> None:
    body = envelope(type="app_mention")
    body["authorizations"] = authorizations  # was iterated as is: a TypeError (a 500)
    trigger = classify(body)
    assert isinstance(trigger, SlackTrigger) and trigger.bot_user_id is None


def form(**fields: str) -> dict[str, list[str]]:
    base = {
        "command": "/ask",
        "text": " what? ",
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "response_url": "https://hooks.slack.com/commands/T1/1/abc",
    }
    return {name: [value] for name, value in {**base, **fields}.items()}


def test_parse_command() -> None:
    command = parse_command(form(), 1000.0)
    assert isinstance(command, SlashCommand)
    assert command.text == "what?" and command.received_at == 1000.0
    assert command.conversation_key == "slack:T1:C1:command" and command.dify_user == "slack:T1:U1"
    other = parse_command(form(response_url="https://x/2"), 0)
    assert isinstance(other, SlashCommand) and command.key.startswith("cmd:") and command.key != other.key
    assert SlashCommand.from_payload(command.to_payload()) == command
    assert parse_command(form(user_id="", response_url=""), 0) == "missing user_id, response_url"
    assert parse_command({"command": []}, 0) == "missing command, team_id, channel_id, user_id, response_url"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/commands/T1/1/abc", True),
        ("https://hooks.slack-gov.com/commands/T1/1/abc", True),
        ("http://hooks.slack.com/commands/T1/1/abc", False),
        ("https://evil.example/commands", False),
        ("http://169.254.169.254/latest", False),
        ("https://slack.com:99999/x", False),
        ("http://127.0.0.1:5000/response/1", True),  # the host of api_base_url (a local fake)
        ("http://127.0.0.1:5001/response/1", False),
        ("not a url", False),
    ],
)
def test_response_url_hosts(url: str, allowed: bool) -> None:
    settings = SlackSettings(api_base_url="http://127.0.0.1:5000/api/")
    assert settings.api_base_url == "http://127.0.0.1:5000/api"
    assert settings.allows_response_url(url) is allowed


@pytest.mark.parametrize(
    "changes",
    [
        {"bot_token": "xoxp-user-token"},
        {"signing_secret": "  "},
        {"api_base_url": "ftp://slack.com/api"},
        {"api_base_url": "slack.com"},
        {"slash_command": "ask"},
        {"slash_command": "/Ask"},
        {"edit_interval": 0.01},
        {"message_limit": 5000},
        {"stream_limit": 20000},
    ],
)
def test_settings_refuse_mistakes(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SlackSettings(**changes)


def test_settings_may_start_empty() -> None:
    settings = SlackSettings()
    assert settings.signing_secret is None and settings.bot_token is None
    assert SlackSettings(bot_token="xoxb-1", signing_secret="s").bot_token is not None


def test_manifest_for_edit_and_native_streaming() -> None:
    url = "https://gw.example/e/tok"
    plain = build_manifest(url, SlackSettings())
    assert plain["display_information"]["name"] == "Dify"
    assert plain["settings"]["event_subscriptions"] == {
        "request_url": url,
        "bot_events": ["app_mention", "message.im", "message.channels", "message.groups"],
    }
    assert plain["settings"]["interactivity"] == {"is_enabled": True, "request_url": url}
    assert plain["features"]["slash_commands"][0]["command"] == "/ask"
    scopes = plain["oauth_config"]["scopes"]["bot"]
    assert {"app_mentions:read", "chat:write", "im:history", "channels:history", "groups:history", "commands"} == set(
        scopes
    )
    assert "assistant_view" not in plain["features"]
    native = build_manifest(url, SlackSettings(native_streaming=True), name="Helper")
    assert "assistant:write" in native["oauth_config"]["scopes"]["bot"]
    assert native["features"]["assistant_view"]["assistant_description"]
    assert native["features"]["bot_user"]["display_name"] == "Helper"


def request(body: bytes) -> Request:
    return Request("POST", "/", "", Headers(), body, "ep_1", "http://gw/e/t", 0.0)


@pytest.mark.parametrize(
    ("body", "probe"),
    [
        (b"ssl_check=1&token=abc", True),
        (b"token=abc&ssl_check=1", True),
        (b"ssl_check=1", True),
        (b"ssl_check=0&token=abc", False),
        (b"ssl_check=1&command=/ask", False),  # a command: verified like any other
        (b'{"ssl_check": 1}', False),
        (b"ssl_check=1&token=" + b"a" * 600, False),
    ],
)
def test_ssl_check(body: bytes, probe: bool) -> None:
    assert is_ssl_check(request(body)) is probe


class _Ctx:
    def __init__(self, settings: SlackSettings, clock: FakeClock) -> None:
        self.settings = settings
        self.clock = clock

    def secrets(self, setting: str) -> tuple[str, ...]:
        value = getattr(self.settings, setting)
        return (value.get_secret_value(),) if value is not None else ()


@pytest.mark.anyio
@pytest.mark.parametrize(("delta", "passed"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
async def test_verifier_window_edges_on_a_fake_clock(delta: int, passed: bool) -> None:
    clock = FakeClock(1_700_000_000.0)
    body = b'{"type": "url_verification", "challenge": "c"}'
    ts = str(int(clock.time()) + delta)
    signature = SignatureVerifier("s3cret").generate_signature(timestamp=ts, body=body)
    headers = Headers([("x-slack-request-timestamp", ts), ("x-slack-signature", signature or "")])
    inbound = Request("POST", "/", "", headers, body, "ep_1", "http://gw/e/t", clock.time())
    verdict = await verify(inbound, _Ctx(SlackSettings(signing_secret="s3cret"), clock))  # type: ignore[arg-type]
    assert verdict.passed is passed
    unset = await verify(inbound, _Ctx(SlackSettings(), clock))  # type: ignore[arg-type]
    assert not unset.passed and "signing_secret" in unset.reason
