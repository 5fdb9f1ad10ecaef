"""A fake Telegram Bot API for tests, and updates shaped as Telegram sends them.

`FakeTelegram().app()` is a small Starlette app (serve it on a real uvicorn with `live_server`;
point the endpoint's `api_base_url` at its base URL). It records every call and answers like
the Bot API (`{"ok": true, "result": …}` or `{"ok": false, "error_code", "description"}`):

- `POST /bot{token}/{method}` (JSON): `getMe`, `sendMessage`, `editMessageText`,
  `deleteMessage`, `sendMessageDraft`, `sendChatAction`, `setWebhook`, `getWebhookInfo`,
  `deleteWebhook`, `setMyCommands`, `getFile`; a wrong token answers 401. Texts sent with
  `parse_mode: "HTML"` are parsed as Telegram does: an unknown tag, an unclosed or stray tag or
  an unknown entity answers 400 "can't parse entities", and text over 4,096 characters after
  parsing answers 400 "message is too long". Messages are kept (`chat(chat_id)`: what a person
  sees), and so are drafts (`drafts`).
- `GET /file/bot{token}/{path}`: files added with `add_file`.
- Faults: `rate_limits` (method -> the `retry_after` of its next 429s, one per call),
  `refuse_markup` (the next N HTML texts answer 400 "can't parse entities"), `outages` (the next
  answers' statuses, one per call, e.g. 502), `refuse_drafts` (drafts answer 400).

Update builders (`user`, `private_chat`, `group_chat`, `message_update`) follow the shapes of
core.telegram.org/bots/api (Update, Message, MessageEntity with UTF-16 offsets).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.testing.platforms.waiting import wait_until

__all__ = [
    "FakeTelegram",
    "TelegramCall",
    "TelegramMessage",
    "group_chat",
    "message_update",
    "private_chat",
    "user",
]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT_ID = 123456789
BOT_USERNAME = "dify_test_bot"
MAX_TEXT = 4096
_TAGS = {
    "b": set(),
    "strong": set(),
    "i": set(),
    "em": set(),
    "u": set(),
    "ins": set(),
    "s": set(),
    "strike": set(),
    "del": set(),
    "tg-spoiler": set(),
    "span": {"class"},
    "a": {"href"},
    "code": {"class"},
    "pre": set(),
    "blockquote": {"expandable"},
    "tg-emoji": {"emoji-id"},
}


class _MarkupError(ValueError):
    pass


class _TelegramHTML(HTMLParser):
    """Telegram's HTML parse mode: known tags only, properly nested, known entities only."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS or any(name not in _TAGS[tag] for name, _ in attrs):
            raise _MarkupError(f'Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise _MarkupError(f'Unexpected end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            raise _MarkupError("Unexpected <")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in ("lt", "gt", "amp", "quot"):
            raise _MarkupError(f'Unsupported HTML entity "&{name};"')
        self.text.append(unescape(f"&{name};"))

    def handle_charref(self, name: str) -> None:
        self.text.append(unescape(f"&#{name};"))


def parse_html(text: str) -> str:
    """The text Telegram shows for `text` in HTML parse mode; `ValueError` where it refuses."""
    if re.search(r"&(?![A-Za-z]+;|#[0-9]+;|#x[0-9A-Fa-f]+;)", text):
        raise _MarkupError("Can't find end of the entity")
    parser = _TelegramHTML()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise _MarkupError(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"')
    return "".join(parser.text)


@dataclass
class TelegramCall:
    method: str
    params: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class TelegramMessage:
    message_id: int
    chat_id: int
    text: str  # as the person sees it (parsed)
    raw: str  # as sent
    parse_mode: str | None
    thread_id: int | None = None
    reply_to: int | None = None
    edits: list[str] = field(default_factory=list)


@dataclass
class FakeTelegram:
    token: str = TOKEN
    bot_id: int = BOT_ID
    username: str = BOT_USERNAME
    base: str = ""  # set by the test once the server runs
    rate_limits: dict[str, list[float]] = field(default_factory=dict)
    refuse_markup: int = 0
    refuse_drafts: bool = False
    outages: list[int] = field(default_factory=list)
    calls: list[TelegramCall] = field(default_factory=list)
    messages: dict[tuple[int, int], TelegramMessage] = field(default_factory=dict)
    drafts: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (path, content)
    webhook: dict[str, Any] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)
    pending_updates: int = 0
    last_error: tuple[int, str] | None = None
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    # -- what a person sees ---------------------------------------------------------------------

    def chat(self, chat_id: int) -> list[str]:
        """The chat's messages from the bot, in order, as shown."""
        return [m.text for (cid, _), m in sorted(self.messages.items()) if cid == chat_id]

    def called(self, *methods: str) -> list[TelegramCall]:
        return [c for c in self.calls if c.method in methods and c.status == 200]

    def add_file(self, file_id: str, path: str, content: bytes) -> None:
        self.files[file_id] = (path, content)

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until `condition()` holds; fail after `timeout` seconds, naming the calls seen."""
        await wait_until(condition, lambda: f"calls: {[(c.method, c.status) for c in self.calls]}", timeout=timeout)

    # -- the app --------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self._method, methods=["POST"]),
                Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
            ]
        )

    def _fail(self, method: str, params: dict[str, Any], status: int, description: str, **extra: Any) -> Response:
        self.calls.append(TelegramCall(method, params, status))
        return JSONResponse({"ok": False, "error_code": status, "description": description, **extra}, status)

    async def _method(self, request: Request) -> Response:
        method = request.path_params["method"]
        body = await request.body()
        params: dict[str, Any] = (await request.json()) if body else {}
        if request.path_params["token"] != self.token:
            return self._fail(method, params, 401, "Unauthorized")
        if self.outages:
            status = self.outages.pop(0)
            return self._fail(method, params, status, "Internal Server Error")
        waits = self.rate_limits.get(method)
        if waits:
            wait = waits.pop(0)
            return self._fail(
                method, params, 429, f"Too Many Requests: retry after {wait:g}", parameters={"retry_after": wait}
            )
        handler = getattr(self, "_" + method, None)
        if handler is None:
            return self._fail(method, params, 404, "Not Found: method not found")
        try:
            result = handler(params)
        except _Refused as exc:
            return self._fail(method, params, 400, f"Bad Request: {exc}")
        self.calls.append(TelegramCall(method, params, 200))
        return JSONResponse({"ok": True, "result": result})

    async def _file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        for path, content in self.files.values():
            if path == request.path_params["path"]:
                return Response(content, media_type="application/octet-stream")
        return Response(status_code=404)

    # -- methods --------------------------------------------------------------------------------

    def _shown(self, params: dict[str, Any]) -> str:
        text = params.get("text")
        if not isinstance(text, str):
            raise _Refused("message text is empty")
        if params.get("parse_mode") == "HTML":
            if self.refuse_markup > 0:
                self.refuse_markup -= 1
                raise _Refused('can\'t parse entities: Unsupported start tag "x" at byte offset 0')
            try:
                text = parse_html(text)
            except ValueError as exc:
                raise _Refused(f"can't parse entities: {exc}") from None
        elif params.get("parse_mode") is not None:
            raise _Refused("unsupported parse_mode")
        if not text.strip():
            raise _Refused("message text is empty")
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT:
            raise _Refused("message is too long")
        return text

    def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Dify", "username": self.username}

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = self._shown(params)
        chat_id, mid = int(params["chat_id"]), next(self._ids)
        reply = params.get("reply_parameters") or {}
        self.messages[(chat_id, mid)] = TelegramMessage(
            mid,
            chat_id,
            text,
            params["text"],
            params.get("parse_mode"),
            params.get("message_thread_id"),
            reply.get("message_id"),
        )
        return {"message_id": mid, "chat": {"id": chat_id}, "date": int(time.time()), "text": text}

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None:
            raise _Refused("message to edit not found")
        text = self._shown(params)
        if text == message.text:
            raise _Refused(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        message.edits.append(text)
        message.text, message.raw, message.parse_mode = text, params["text"], params.get("parse_mode")
        return {"message_id": message.message_id, "chat": {"id": key[0]}, "text": text}

    def _deleteMessage(self, params: dict[str, Any]) -> bool:
        if self.messages.pop((int(params["chat_id"]), int(params["message_id"])), None) is None:
            raise _Refused("message to delete not found")
        return True

    def _sendMessageDraft(self, params: dict[str, Any]) -> bool:
        if self.refuse_drafts:
            raise _Refused("method is available only for bots with forum topic mode enabled")
        if not params.get("draft_id"):
            raise _Refused("draft_id must be non-zero")
        self.drafts.append({**params, "shown": self._shown(params)})
        return True

    def _sendChatAction(self, params: dict[str, Any]) -> bool:
        return True

    def _setWebhook(self, params: dict[str, Any]) -> bool:
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise _Refused("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self.pending_updates = 0
        self.webhook = dict(params)
        return True

    def _deleteWebhook(self, params: dict[str, Any]) -> bool:
        if params.get("drop_pending_updates"):
            self.pending_updates = 0
        self.webhook = {}
        return True

    def _getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": self.pending_updates,
        }
        if self.webhook:
            info["max_connections"] = 40
            if "allowed_updates" in self.webhook:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        if self.last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.last_error
        return info

    def _setMyCommands(self, params: dict[str, Any]) -> bool:
        self.commands = list(params.get("commands") or [])
        return True

    def _getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id")
        if file_id not in self.files:
            raise _Refused("invalid file_id")
        path, content = self.files[file_id]
        return {"file_id": file_id, "file_unique_id": file_id[-8:], "file_size": len(content), "file_path": path}


class _Refused(Exception):
    pass


# -- updates as Telegram sends them -------------------------------------------------------------

_update_ids = itertools.count(10_000)
_message_ids = itertools.count(1)


def user(
    user_id: int = 1111, first_name: str = "Ana", username: str | None = "ana", *, bot: bool = False
) -> dict[str, Any]:
    """A `User`."""
    doc: dict[str, Any] = {"id": user_id, "is_bot": bot, "first_name": first_name, "language_code": "en"}
    if username:
        doc["username"] = username
    return doc


def private_chat(person: dict[str, Any]) -> dict[str, Any]:
    """The `Chat` of a private chat with `person` (its id is the person's)."""
    chat = {"id": person["id"], "first_name": person["first_name"], "type": "private"}
    if "username" in person:
        chat["username"] = person["username"]
    return chat


def group_chat(chat_id: int = -1001234567890, title: str = "Team", *, forum: bool = False) -> dict[str, Any]:
    """A supergroup's `Chat` (a forum with topics when `forum`)."""
    chat: dict[str, Any] = {"id": chat_id, "title": title, "type": "supergroup"}
    if forum:
        chat["is_forum"] = True
    return chat


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entities(text: str) -> list[dict[str, Any]]:
    """Telegram's entities of `text`: a leading /command, @mentions (offsets in UTF-16 units)."""
    found: list[dict[str, Any]] = []
    command = re.match(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{5,32})?", text)
    if command:
        found.append({"offset": 0, "length": _utf16(command.group()), "type": "bot_command"})
    for match in re.finditer(r"(?<![\w/])@[A-Za-z0-9_]{5,32}", text):
        found.append({"offset": _utf16(text[: match.start()]), "length": _utf16(match.group()), "type": "mention"})
    return found


def message_update(
    text: str | None,
    *,
    sender: dict[str, Any] | None = None,
    chat: dict[str, Any] | None = None,
    update_id: int | None = None,
    message_id: int | None = None,
    thread_id: int | None = None,
    reply_to: dict[str, Any] | None = None,
    photo: str | None = None,
    document: dict[str, Any] | None = None,
    edited: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """An `Update` with a `message` (`edited_message` when `edited`).

    `text` is the message's text, or its caption when `photo` (a file_id) or `document` (a
    `Document`) is given. `thread_id`: a forum topic (the message then replies to the topic's
    creation message, as Telegram sends it). `reply_to`: the message replied to.
    """
    person = sender or user()
    where = chat or private_chat(person)
    message: dict[str, Any] = {
        "message_id": message_id if message_id is not None else next(_message_ids),
        "from": person,
        "chat": where,
        "date": int(time.time()),
    }
    if photo is not None or document is not None:
        if photo is not None:
            message["photo"] = [
                {"file_id": photo + "-small", "file_unique_id": "s", "width": 90, "height": 67, "file_size": 1200},
                {"file_id": photo, "file_unique_id": "l", "width": 1280, "height": 960, "file_size": 98000},
            ]
        else:
            message["document"] = document
        if text:
            message["caption"], message["caption_entities"] = text, _entities(text)
    elif text is not None:
        message["text"] = text
        if entities := _entities(text):
            message["entities"] = entities
    if thread_id is not None:
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
        if reply_to is None:
            message["reply_to_message"] = {
                "message_id": thread_id,
                "from": user(9999, "Owner", "owner"),
                "chat": where,
                "date": int(time.time()) - 3600,
                "message_thread_id": thread_id,
                "forum_topic_created": {"name": "Topic", "icon_color": 7322096},
            }
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    message.update(extra)
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        "edited_message" if edited else "message": message,
    }
