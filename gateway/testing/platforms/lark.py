"""A fake Lark / Feishu Open API and events built as Lark sends them, for tests of the `lark` plugin.

`FakeLark` is a small Starlette app (serve it on a real uvicorn) under `/open-apis` that records
every call and answers like Lark (`{"code": 0, "msg": "ok", ...}`):

- `POST auth/v3/tenant_access_token/internal`: a token for the right app_id/app_secret
  (`tokens_issued` counts them; `expire_tokens()` makes every issued token invalid: calls with
  one answer code 99991663, as Lark does for an expired token);
- `GET bot/v3/info`; `POST im/v1/messages/{id}/reply`, `PATCH` and `DELETE im/v1/messages/{id}`;
- CardKit: `POST cardkit/v1/cards`, `PUT cardkit/v1/cards/{id}/elements/{element}/content` (only
  while streaming, with a sequence higher than any before on that card, else a refusal),
  `PATCH cardkit/v1/cards/{id}/settings`.

Faults: `rate_limit_once` (route names answering one HTTP 429 with code 99991400 and
`x-ogw-ratelimit-reset: 1`), `outages` (route -> the next answers, one per call: "500" a JSON 500,
"html" a 502 HTML page), `cardkit_refused` (CardKit answers 99991672, a missing scope). Route
names: token, bot_info, reply, patch, delete, create_card, content, settings.

Events: `lark_event(encrypt_key, event, timestamp=…)` encrypts and signs a body like Lark
(`{"encrypt": …}`, `X-Lark-Request-Timestamp`, `-Nonce`, `X-Lark-Signature`);
`lark_url_verification(...)` and `lark_message_event(...)` build the events themselves (shapes from
Lark's docs).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.testing.platforms.waiting import wait_until
from gateway.testing.signing import Signed

__all__ = [
    "CardEntity",
    "FakeLark",
    "LarkCall",
    "LarkMessage",
    "encrypt_event",
    "lark_event",
    "lark_signature",
    "lark_message_event",
    "lark_url_verification",
]

TOKEN_EXPIRED = 99991663
RATE_LIMITED = 99991400
SCOPE_MISSING = 99991672
_ids = itertools.count(1)


# -- events as Lark sends them --------------------------------------------------------------------


def encrypt_event(encrypt_key: str, plaintext: bytes, *, iv: bytes | None = None) -> str:
    """base64(IV + AES-256-CBC(PKCS#7(plaintext))) with key SHA-256(encrypt_key), as Lark encrypts."""
    iv = iv or os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    key = hashlib.sha256(encrypt_key.encode()).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def lark_signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """`X-Lark-Signature`: hex SHA-256(timestamp + nonce + encrypt_key + raw body)."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def lark_event(
    encrypt_key: str,
    event: dict[str, Any],
    *,
    timestamp: float,
    nonce: str | None = None,
    encrypted: bool = True,
    signed: bool = True,
) -> Signed:
    """A request as Lark sends `event`: encrypted (`{"encrypt": …}`) and signed, unless told not to."""
    plain = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    body = json.dumps({"encrypt": encrypt_event(encrypt_key, plain)}).encode() if encrypted else plain
    headers = {"content-type": "application/json; charset=utf-8"}
    if signed:
        ts, nonce = str(int(timestamp)), nonce or secrets.token_hex(8)
        headers |= {
            "x-lark-request-timestamp": ts,
            "x-lark-request-nonce": nonce,
            "x-lark-signature": lark_signature(ts, nonce, encrypt_key, body),
        }
    return Signed(body, headers)


def lark_url_verification(token: str, challenge: str | None = None) -> dict[str, Any]:
    """The event Lark sends when the Request URL is saved."""
    return {"challenge": challenge or secrets.token_hex(16), "token": token, "type": "url_verification"}


def lark_message_event(
    text: str,
    *,
    token: str,
    chat_type: str = "p2p",
    chat_id: str = "oc_chat1",
    sender: str = "ou_user1",
    sender_type: str = "user",
    tenant: str = "tenant1",
    app_id: str = "cli_test123",
    mentions: Sequence[tuple[str, str, str]] = (),
    message_type: str = "text",
    content: dict[str, Any] | None = None,
    root_id: str | None = None,
    thread_id: str | None = None,
    message_id: str | None = None,
    event_id: str | None = None,
    create_time: float | None = None,
) -> dict[str, Any]:
    """An `im.message.receive_v1` event (schema 2.0). `mentions`: (key, open_id, name), e.g.
    ("@_user_1", bot_open_id, "Dify"), with the key written into `text` where the mention is."""
    n = next(_ids)
    millis = str(int((create_time if create_time is not None else time.time()) * 1000))
    message: dict[str, Any] = {
        "message_id": message_id or f"om_msg{n:06d}",
        "create_time": millis,
        "update_time": millis,
        "chat_id": chat_id,
        "chat_type": chat_type,
        "message_type": message_type,
        "content": json.dumps(content if content is not None else {"text": text}, ensure_ascii=False),
        "mentions": [
            {"key": key, "id": {"open_id": open_id, "union_id": f"on_{open_id}", "user_id": None}, "name": name}
            for key, open_id, name in mentions
        ],
        "user_agent": "Mozilla/5.0 Lark/7.0",
    }
    if root_id:
        message |= {"root_id": root_id, "parent_id": root_id}
    if thread_id:
        message["thread_id"] = thread_id
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or f"ev_{n:06d}{secrets.token_hex(4)}",
            "token": token,
            "create_time": millis,
            "event_type": "im.message.receive_v1",
            "tenant_key": tenant,
            "app_id": app_id,
        },
        "event": {
            "sender": {
                "sender_id": {"union_id": f"on_{sender}", "user_id": None, "open_id": sender},
                "sender_type": sender_type,
                "tenant_key": tenant,
            },
            "message": message,
        },
    }


# -- the fake Open API ----------------------------------------------------------------------------


@dataclass
class LarkCall:
    route: str
    path: str
    body: dict[str, Any]
    status: int
    host: str = ""
    at: float = field(default_factory=time.monotonic)


@dataclass
class CardEntity:
    card_id: str
    content: str
    streaming: bool
    sequence: int = 0
    updates: list[str] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)


@dataclass
class LarkMessage:
    message_id: str
    reply_to: str
    in_thread: bool
    card: dict[str, Any] | None = None  # an interactive card's JSON
    card_id: str | None = None  # a card entity sent by id
    deleted: bool = False
    edits: list[str] = field(default_factory=list)


def _markdown(card: dict[str, Any]) -> str:
    body = card.get("body") if isinstance(card.get("body"), dict) else {}
    elements = body.get("elements") if isinstance(body, dict) else None
    return "".join(e.get("content", "") for e in elements or [] if isinstance(e, dict) and e.get("tag") == "markdown")


class FakeLark:
    def __init__(
        self, *, app_id: str = "cli_test123", app_secret: str = "app-secret", bot_open_id: str = "ou_bot"
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.bot_open_id = bot_open_id
        self.base = ""  # set by the test once the server runs
        self.token_lifetime = 7200
        self.calls: list[LarkCall] = []
        self.messages: dict[str, LarkMessage] = {}
        self.cards: dict[str, CardEntity] = {}
        self.tokens_issued = 0
        self.issued: list[str] = []  # every tenant token handed out, in order
        self.rate_limit_once: set[str] = set()
        self.outages: dict[str, list[str]] = {}
        self.cardkit_refused = False
        self._valid_tokens: set[str] = set()
        self._counter = itertools.count(1)

    # -- what tests read --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.base}/open-apis"

    def calls_to(self, route: str) -> list[LarkCall]:
        return [call for call in self.calls if call.route == route and call.status == 200]

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (Lark: code 99991663)."""
        self._valid_tokens.clear()

    def replies(self, message_id: str) -> list[LarkMessage]:
        """The bot's live replies to a message, oldest first."""
        return [m for m in self.messages.values() if m.reply_to == message_id and not m.deleted]

    def shown(self, message: LarkMessage) -> str:
        """The Markdown a reply shows now (a card entity's element, or the card's markdown)."""
        if message.card_id is not None:
            return self.cards[message.card_id].content
        return _markdown(message.card or {})

    def texts(self, message_id: str) -> list[str]:
        return [self.shown(m) for m in self.replies(message_id)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until `predicate()` holds; fail after `timeout` seconds."""
        await wait_until(predicate, lambda: f"fake Lark calls: {[c.route for c in self.calls]}", timeout=timeout)

    # -- the app ----------------------------------------------------------------------------------

    def app(self) -> Starlette:
        api = "/open-apis"
        return Starlette(
            routes=[
                Route(f"{api}/auth/v3/tenant_access_token/internal", self._endpoint("token"), methods=["POST"]),
                Route(f"{api}/bot/v3/info", self._endpoint("bot_info"), methods=["GET"]),
                Route(f"{api}/im/v1/messages/{{message_id}}/reply", self._endpoint("reply"), methods=["POST"]),
                Route(f"{api}/im/v1/messages/{{message_id}}", self._endpoint("patch"), methods=["PATCH"]),
                Route(f"{api}/im/v1/messages/{{message_id}}", self._endpoint("delete"), methods=["DELETE"]),
                Route(f"{api}/cardkit/v1/cards", self._endpoint("create_card"), methods=["POST"]),
                Route(
                    f"{api}/cardkit/v1/cards/{{card_id}}/elements/{{element_id}}/content",
                    self._endpoint("content"),
                    methods=["PUT"],
                ),
                Route(f"{api}/cardkit/v1/cards/{{card_id}}/settings", self._endpoint("settings"), methods=["PATCH"]),
            ]
        )

    def _endpoint(self, route: str) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            return await self._handle(route, request)

        return handle

    def _record(self, route: str, request: Request, body: dict[str, Any], status: int) -> None:
        self.calls.append(LarkCall(route, request.url.path, body, status, request.url.hostname or ""))

    async def _handle(self, route: str, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if self.outages.get(route):
            fault = self.outages[route].pop(0)
            self._record(route, request, body, 502 if fault == "html" else 500)
            if fault == "html":
                return HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", 502)
            return JSONResponse({"code": 1500, "msg": "internal error"}, 500)
        if route in self.rate_limit_once:
            self.rate_limit_once.discard(route)
            self._record(route, request, body, 429)
            return JSONResponse(
                {"code": RATE_LIMITED, "msg": "request trigger frequency limit"},
                429,
                headers={"x-ogw-ratelimit-limit": "5", "x-ogw-ratelimit-reset": "1"},
            )
        if route != "token":
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self._valid_tokens:
                self._record(route, request, body, 400)
                msg = "Invalid access token for authorization. Please make a request with token attached."
                return JSONResponse({"code": TOKEN_EXPIRED, "msg": msg}, 400)
        status, answer = getattr(self, "_" + route)(request.path_params, body)
        self._record(route, request, body, status)
        return JSONResponse(answer, status)

    # -- the API ------------------------------------------------------------------------------------

    @staticmethod
    def _ok(**data: Any) -> tuple[int, dict[str, Any]]:
        return 200, {"code": 0, "msg": "success", **data}

    def _token(self, params: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("app_id") != self.app_id or body.get("app_secret") != self.app_secret:
            return 400, {"code": 10014, "msg": "app secret invalid"}
        self.tokens_issued += 1
        token = f"t-{secrets.token_hex(12)}"
        self._valid_tokens.add(token)
        self.issued.append(token)
        return 200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.token_lifetime}

    def _bot_info(self, params: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        bot = {
            "activate_status": 2,
            "app_name": "Dify",
            "avatar_url": "",
            "ip_white_list": [],
            "open_id": self.bot_open_id,
        }
        return self._ok(bot=bot)

    def _reply(self, params: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("msg_type") != "interactive" or not isinstance(body.get("content"), str):
            return 400, {"code": 230001, "msg": "invalid message content"}
        content = json.loads(body["content"])
        message = LarkMessage(
            f"om_reply{next(self._counter):06d}", params["message_id"], bool(body.get("reply_in_thread"))
        )
        if content.get("type") == "card":
            card_id = content.get("data", {}).get("card_id")
            if card_id not in self.cards:
                return 400, {"code": 230099, "msg": "card not found"}
            message.card_id = card_id
        else:
            message.card = content
        self.messages[message.message_id] = message
        return self._ok(data={"message_id": message.message_id, "msg_type": "interactive"})

    def _patch(self, params: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        message = self.messages.get(params["message_id"])
        if message is None or message.deleted:
            return 400, {"code": 231003, "msg": "The message is not found"}
        if message.card_id is not None:
            return 400, {"code": 230099, "msg": "a card entity is updated through CardKit"}
        message.card = json.loads(body.get("content") or "{}")
        message.edits.append(_markdown(message.card))
        return self._ok(data={})

    def _delete(self, params: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        message = self.messages.get(params["message_id"])
        if message is None or message.deleted:
            return 400, {"code": 231003, "msg": "The message is not found"}
        message.deleted = True
        return self._ok(data={})

    def _create_card(self, params: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.cardkit_refused:
            msg = "Access denied. One of the following scopes is required: [cardkit:card:write]"
            return 400, {"code": SCOPE_MISSING, "msg": msg}
        if body.get("type") != "card_json":
            return 400, {"code": 300301, "msg": "invalid card type"}
        card = json.loads(body.get("data") or "{}")
        config = card.get("config") or {}
        card_id = f"7{next(self._counter):018d}"
        self.cards[card_id] = CardEntity(card_id, _markdown(card), bool(config.get("streaming_mode")))
        return self._ok(data={"card_id": card_id})

    def _sequenced(self, card: CardEntity | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if card is None:
            return 400, {"code": 300302, "msg": "card not found"}
        sequence = body.get("sequence")
        if not isinstance(sequence, int) or sequence <= card.sequence:
            return 400, {"code": 300317, "msg": "sequence number compare failed"}
        card.sequence = sequence
        card.sequences.append(sequence)
        return None

    def _content(self, params: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        card = self.cards.get(params["card_id"])
        if (refused := self._sequenced(card, body)) is not None:
            return refused
        assert card is not None
        if not card.streaming:
            return 400, {"code": 300309, "msg": "streaming mode is closed"}
        card.content = str(body.get("content", ""))
        card.updates.append(card.content)
        return self._ok(data={})

    def _settings(self, params: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        card = self.cards.get(params["card_id"])
        if (refused := self._sequenced(card, body)) is not None:
            return refused
        assert card is not None
        config = json.loads(body.get("settings") or "{}").get("config", {})
        if "streaming_mode" in config:
            card.streaming = bool(config["streaming_mode"])
        return self._ok(data={})
