"""The kit's signed requests pass the gateway's verifiers, the platforms' reference libraries and
the built-in plugins' own verifiers, and a changed byte fails them."""

from __future__ import annotations

import time

import pytest
from nacl.signing import VerifyKey
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook

import endpoints.discord as discord
import endpoints.openai as openai
import endpoints.slack as slack
import endpoints.webhook as webhook
from endpoints.openai.keys import generate_initial_key
from gateway.plugin import (
    new_webhook_secret,
    parse_webhook_secret,
    verify_discord,
    verify_slack,
    verify_standard_webhook,
)
from gateway.testing import (
    DiscordKeyPair,
    FakeContext,
    discord_request,
    make_request,
    openai_request,
    slack_request,
    webhook_request,
)
from tests.support.responses import whole_body

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0


class _At:
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def test_slack_v0() -> None:
    signed = slack_request("slack-secret", {"type": "event_callback"}, timestamp=NOW)
    ts, sig = signed.headers["x-slack-request-timestamp"], signed.headers["x-slack-signature"]
    assert verify_slack(b"slack-secret", ts, sig, signed.body, NOW)
    assert SignatureVerifier("slack-secret", clock=_At(NOW)).is_valid(signed.body, ts, sig)  # type: ignore[arg-type]
    assert not verify_slack(b"slack-secret", ts, sig, signed.body + b" ", NOW)
    assert not verify_slack(b"other-secret", ts, sig, signed.body, NOW)
    form = slack_request("s", "command=%2Fask&text=hi", timestamp=NOW, content_type="application/x-www-form-urlencoded")
    assert form.body == b"command=%2Fask&text=hi" and form.headers["content-type"].startswith("application/x-www")


def test_discord_ed25519() -> None:
    keys = DiscordKeyPair()
    signed = discord_request(keys, {"type": 1}, timestamp=NOW)
    sig, ts = signed.headers["x-signature-ed25519"], signed.headers["x-signature-timestamp"]
    assert verify_discord(keys.public_key_hex, sig, ts, signed.body, NOW)
    VerifyKey(bytes.fromhex(keys.public_key_hex)).verify(ts.encode() + signed.body, bytes.fromhex(sig))
    assert not verify_discord(DiscordKeyPair().public_key_hex, sig, ts, signed.body, NOW)
    assert not verify_discord(keys.public_key_hex, sig, ts, signed.body.replace(b"1", b"2"), NOW)
    assert "SigningKey" not in repr(keys)


def test_standard_webhooks() -> None:
    secret = new_webhook_secret()
    now = time.time()  # the reference library checks the timestamp against its own clock
    signed = webhook_request(secret, {"query": "hi"}, timestamp=now, msg_id="msg_1")
    headers = signed.headers
    assert headers["webhook-id"] == "msg_1"
    assert Webhook(secret).verify(signed.body, dict(headers)) == {"query": "hi"}
    key = [parse_webhook_secret(secret)]
    args = (headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"])
    assert verify_standard_webhook(key, *args, signed.body, now)
    assert not verify_standard_webhook(key, *args, signed.body + b"x", now)
    assert webhook_request(secret, b"{}", timestamp=now).headers["webhook-id"].startswith("msg_")


def test_openai_bearer_and_the_request_forms() -> None:
    signed = openai_request("sk-dgw-abc", {"model": "m"})
    assert signed.headers == {"authorization": "Bearer sk-dgw-abc", "content-type": "application/json"}
    request = signed.request("/v1/chat/completions", query_string="a=1&a=2")
    assert (request.method, request.path, request.query, request.json()) == (
        "POST",
        "/v1/chat/completions",
        [("a", "1"), ("a", "2")],
        {"model": "m"},
    )
    assert request.headers["Authorization"] == "Bearer sk-dgw-abc"
    sent = openai_request("sk-dgw-abc").httpx("http://gw.test/e/x/v1/models", method="GET")
    assert (sent.method, sent.headers["authorization"], sent.content) == ("GET", "Bearer sk-dgw-abc", b"")
    assert make_request("get", headers=[("X-A", "1"), ("x-a", "2")]).headers.getall("x-a") == ["1", "2"]


# -- accepted by the built-in plugins' verifiers ----------------------------------------------------


async def test_the_builtin_plugins_accept_them_and_refuse_a_forgery() -> None:
    keys = DiscordKeyPair()
    async with FakeContext(slack.plugin, {"signing_secret": "slack-secret"}) as ctx:
        signed = slack_request("slack-secret", b"{}", timestamp=ctx.clock.time())
        assert (await slack.plugin.verifier(signed.request("/events"), ctx)).status == "ok"
        forged = slack_request("guess", b"{}", timestamp=ctx.clock.time())
        assert not (await slack.plugin.verifier(forged.request("/events"), ctx)).passed

    settings = {"application_id": "123456", "public_key": keys.public_key_hex}
    async with FakeContext(discord.plugin, settings) as ctx:
        signed = discord_request(keys, {"type": 1}, timestamp=ctx.clock.time())
        assert (await discord.plugin.verifier(signed.request(), ctx)).status == "ok"
        stale = discord_request(keys, {"type": 1}, timestamp=ctx.clock.time() - 3600)
        assert not (await discord.plugin.verifier(stale.request(), ctx)).passed

    secret = new_webhook_secret()
    async with FakeContext(webhook.plugin, {"secret": secret}) as ctx:
        signed = webhook_request(secret, {"query": "q", "user": "u"}, timestamp=ctx.clock.time())
        assert (await webhook.plugin.verifier(signed.request(), ctx)).status == "ok"
        forged = webhook_request(new_webhook_secret(), b"{}", timestamp=ctx.clock.time())
        assert not (await webhook.plugin.verifier(forged.request(), ctx)).passed

    key, stored = generate_initial_key()
    async with FakeContext(openai.plugin, {"api_key": stored}) as ctx:
        listing = openai_request(key).request("/v1/models", method="GET")
        assert (await openai.plugin.verifier(listing, ctx)).status == "ok"
        refused = await ctx.dispatch(openai_request("sk-dgw-" + "x" * 43).request("/v1/models", method="GET"))
        assert refused.status == 401 and b"invalid_api_key" in whole_body(refused)
