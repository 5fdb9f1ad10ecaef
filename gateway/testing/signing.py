"""Inbound requests signed as each platform signs them, for the verifiers the gateway runs.

Every builder returns a `Signed` (the raw body and the headers the platform sends); turn it
into a plugin `Request` with `.request(path)` (to call a handler or `dispatch` directly) or
into an `httpx.Request` with `.httpx(url)` (to send it to a running gateway). Timestamps are
explicit: pass `ctx.clock.time()` of the context the verifier will use.

    signed = slack_request("signing-secret", b'{"type":"url_verification"}', timestamp=ctx.clock.time())
    response = await dispatch(plugin, ctx, signed.request("/events"))
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from nacl.signing import SigningKey

from gateway.plugin import Request, parse_webhook_secret, slack_signature, standard_webhook_headers
from gateway.testing.requests import make_request

__all__ = [
    "Body",
    "DiscordKeyPair",
    "Signed",
    "discord_request",
    "openai_request",
    "slack_request",
    "telegram_request",
    "webhook_request",
]

#: A body: raw bytes, text (UTF-8 encoded) or a JSON value (encoded compactly).
Body = bytes | str | Mapping[str, Any] | list[Any]


def _encode(body: Body) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed request's raw body and headers (lower-case names), as the platform sends them."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, path: str = "/", *, method: str = "POST", query_string: str = "", **fields: Any) -> Request:
        """The plugin `Request` a handler receives (see `make_request` for the other fields)."""
        return make_request(method, path, body=self.body, headers=self.headers, query_string=query_string, **fields)

    def httpx(self, url: str, *, method: str = "POST") -> httpx.Request:
        """An `httpx.Request` to send with `client.send(...)` to a running gateway."""
        return httpx.Request(method, url, content=self.body, headers=self.headers)


def slack_request(
    signing_secret: str, body: Body, *, timestamp: float, content_type: str = "application/json"
) -> Signed:
    """Signed with Slack's v0 scheme (`X-Slack-Signature`, `X-Slack-Request-Timestamp`).

    Events and interactivity are JSON; slash commands are a form: pass the url-encoded text and
    `content_type="application/x-www-form-urlencoded"`.
    """
    raw = _encode(body)
    ts = str(int(timestamp))
    return Signed(
        raw,
        {
            "content-type": content_type,
            "x-slack-request-timestamp": ts,
            "x-slack-signature": slack_signature(signing_secret.encode(), ts, raw),
        },
    )


class DiscordKeyPair:
    """An application's Ed25519 key pair: the public key goes into the endpoint's settings, the
    private one signs interactions like Discord does."""

    def __init__(self, key: SigningKey | None = None) -> None:
        self._key = key or SigningKey.generate()

    @property
    def public_key_hex(self) -> str:
        """The lower-case hex public key (Discord's "Public Key" of the application)."""
        return bytes(self._key.verify_key).hex()

    def sign(self, timestamp: str, body: bytes) -> str:
        """The hex `X-Signature-Ed25519` of `timestamp + body`."""
        return self._key.sign(timestamp.encode() + body).signature.hex()

    def __repr__(self) -> str:
        return f"DiscordKeyPair(public_key_hex={self.public_key_hex!r})"


def discord_request(keys: DiscordKeyPair, body: Body, *, timestamp: float) -> Signed:
    """An interaction signed like Discord signs it (`X-Signature-Ed25519`, `X-Signature-Timestamp`)."""
    raw = _encode(body)
    ts = str(int(timestamp))
    return Signed(
        raw,
        {"content-type": "application/json", "x-signature-ed25519": keys.sign(ts, raw), "x-signature-timestamp": ts},
    )


def webhook_request(secret: str, body: Body, *, timestamp: float, msg_id: str | None = None) -> Signed:
    """Signed per Standard Webhooks with a `whsec_` secret (`webhook-id`, `-timestamp`, `-signature`).

    `msg_id` is the delivery id (a replay sends the same one); a fresh one when not given.
    """
    raw = _encode(body)
    headers = standard_webhook_headers(
        [parse_webhook_secret(secret)], msg_id or "msg_" + secrets.token_hex(8), int(timestamp), raw
    )
    return Signed(raw, {"content-type": "application/json", **headers})


def telegram_request(secret_token: str | None, update: Body) -> Signed:
    """An update as Telegram posts it to a webhook set with `secret_token`
    (`X-Telegram-Bot-Api-Secret-Token`; none when the webhook was set without one)."""
    headers = {"content-type": "application/json"}
    if secret_token is not None:
        headers["x-telegram-bot-api-secret-token"] = secret_token
    return Signed(_encode(update), headers)


def openai_request(api_key: str, body: Body | None = None) -> Signed:
    """An OpenAI-style call with `Authorization: Bearer <key>` (the openai plugin's `sk-dgw-` keys)."""
    headers = {"authorization": f"Bearer {api_key}"}
    if body is None:
        return Signed(b"", headers)
    return Signed(_encode(body), {**headers, "content-type": "application/json"})
