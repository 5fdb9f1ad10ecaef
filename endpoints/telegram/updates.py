"""What an inbound Telegram update asks for, decided from its parsed body alone (pure).

`parse_update(update)` turns an Update into a `TelegramMessage`, or the reason it is ignored:
only `message` updates are answered (edited messages, channel posts and the rest are not);
messages of bots (this one included) and messages sent on behalf of a chat are ignored, and so
are service messages (members joining, pins, topics created: no text, caption or file).

`TelegramMessage.addressed(bot)` tells whether the bot is spoken to: every message in a private
chat; in groups a command (for this bot or for every bot), a mention of the bot (`@username` or
a text mention of its id) or a reply to one of its messages. `request(bot)` is then the command
and the question, with the mention and the command taken out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["BotIdentity", "FileRef", "TelegramMessage", "TelegramRequest", "parse_update"]

Command = Literal["ask", "reset", "start", "help", "other"]
_COMMANDS: dict[str, Command] = {"ask": "ask", "reset": "reset", "start": "start", "help": "help"}


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """The bot itself (`getMe`)."""

    id: int
    username: str


@dataclass(frozen=True, slots=True)
class FileRef:
    """A photo or document sent with a message, as Telegram describes it."""

    file_id: str
    name: str
    mime_type: str
    size: int | None


@dataclass(frozen=True, slots=True)
class TelegramRequest:
    command: Command | None
    question: str


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _utf16_slice(text: str, offset: int, length: int) -> str:
    """Telegram's entity offsets count UTF-16 code units."""
    encoded = text.encode("utf-16-le")
    return encoded[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="ignore")


@dataclass(frozen=True, slots=True)
class TelegramMessage:
    """A message to consider answering. `thread_id`: the forum topic (`message_thread_id`)."""

    update_id: int
    message_id: int
    chat_id: int
    chat_type: str
    user_id: int
    text: str
    thread_id: int | None = None
    reply_to_user: int | None = None
    mentions: tuple[str, ...] = ()  # @usernames (lower case, no @) and "id:<user id>" of text mentions
    command: str | None = None  # the leading /command, lower case, without its @target
    command_target: str | None = None  # the @bot a command is for (lower case), when named
    command_length: int = 0  # characters of the command in `text`
    file: FileRef | None = None

    @property
    def private(self) -> bool:
        return self.chat_type == "private"

    @property
    def dify_user(self) -> str:
        return f"telegram:{self.user_id}"

    @property
    def conversation_key(self) -> str:
        """One conversation per private chat; in groups per topic (and per person: the gateway keys
        memory by user too)."""
        if self.private:
            return f"telegram:{self.chat_id}"
        return f"telegram:{self.chat_id}:{self.thread_id or 0}"

    def addressed(self, bot: BotIdentity) -> bool:
        """Whether the bot is spoken to (see the module docstring)."""
        if self.user_id == bot.id:
            return False
        if self.command is not None and self.command_target not in (None, bot.username.lower()):
            return False  # a command for another bot
        if self.private or self.command is not None or self.reply_to_user == bot.id:
            return True
        return bot.username.lower() in self.mentions or f"id:{bot.id}" in self.mentions

    def request(self, bot: BotIdentity) -> TelegramRequest:
        """The command (None for a plain message) and the question, mention and command taken out."""
        text = self.text
        command: Command | None = None
        if self.command is not None:
            command = _COMMANDS.get(self.command, "other")
            text = text[self.command_length :]
        mention = "@" + bot.username.lower()
        at = text.lower().find(mention)
        while at >= 0:
            end = at + len(mention)
            if end == len(text) or not (text[end].isalnum() or text[end] == "_"):
                text = text[:at] + text[end:]
                at = text.lower().find(mention, at)
            else:
                at = text.lower().find(mention, end)
        return TelegramRequest(command, text.strip())

    def to_payload(self) -> dict[str, Any]:
        payload = {name: getattr(self, name) for name in self.__dataclass_fields__}
        payload["mentions"] = list(self.mentions)
        payload["file"] = (
            None if self.file is None else {n: getattr(self.file, n) for n in FileRef.__dataclass_fields__}
        )
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TelegramMessage:
        fields: dict[str, Any] = {name: payload.get(name) for name in cls.__dataclass_fields__}
        fields["mentions"] = tuple(payload.get("mentions") or ())
        fields["command_length"] = payload.get("command_length") or 0
        file = payload.get("file")
        fields["file"] = FileRef(**file) if isinstance(file, dict) else None
        return cls(**fields)


def _file(message: Mapping[str, Any]) -> FileRef | None:
    photos = message.get("photo")
    if isinstance(photos, list) and photos:
        largest = photos[-1]  # sizes come smallest first
        if isinstance(largest, dict) and (file_id := _str(largest.get("file_id"))):
            return FileRef(file_id, "photo.jpg", "image/jpeg", _int(largest.get("file_size")))
    document = message.get("document")
    if isinstance(document, dict) and (file_id := _str(document.get("file_id"))):
        return FileRef(
            file_id,
            _str(document.get("file_name")) or "file",
            _str(document.get("mime_type")) or "application/octet-stream",
            _int(document.get("file_size")),
        )
    return None


def parse_update(update: Mapping[str, Any]) -> TelegramMessage | str:
    """The message in an update, or why there is nothing to answer."""
    update_id = _int(update.get("update_id"))
    if update_id is None:
        return "no update_id"
    message = update.get("message")
    if not isinstance(message, dict):
        kinds = sorted(k for k in update if k != "update_id")
        return f"not a new message ({', '.join(kinds) or 'empty'})"
    sender, chat = message.get("from"), message.get("chat")
    if not isinstance(chat, dict) or _int(chat.get("id")) is None or _int(message.get("message_id")) is None:
        return "no chat or message_id"
    if not isinstance(sender, dict) or _int(sender.get("id")) is None or message.get("sender_chat"):
        return "sent on behalf of a chat"
    if sender.get("is_bot"):
        return "a bot's message"
    file = _file(message)
    text = _str(message.get("text")) or _str(message.get("caption"))
    if not text and file is None:
        return "a service message or one without text"
    entities = message.get("entities") if "text" in message else message.get("caption_entities")
    mentions: list[str] = []
    command = target = None
    command_length = 0
    for entity in entities if isinstance(entities, list) else ():
        if not isinstance(entity, dict):
            continue
        offset, length = _int(entity.get("offset")), _int(entity.get("length"))
        if offset is None or length is None:
            continue
        kind = entity.get("type")
        if kind == "mention":
            mentions.append(_utf16_slice(text, offset, length).lstrip("@").lower())
        elif kind == "text_mention" and isinstance(entity.get("user"), dict):
            mentions.append(f"id:{entity['user'].get('id')}")
        elif kind == "bot_command" and offset == 0:
            word = _utf16_slice(text, 0, length)
            name, _, bot = word.lstrip("/").partition("@")
            command, target, command_length = name.lower(), (bot.lower() or None), len(word)
    reply = message.get("reply_to_message")
    reply_from = reply.get("from") if isinstance(reply, dict) else None
    # In a forum every message replies to its topic's first message: only a real reply counts.
    is_topic_root = isinstance(reply, dict) and message.get("is_topic_message") and reply.get("forum_topic_created")
    return TelegramMessage(
        update_id=update_id,
        message_id=message["message_id"],
        chat_id=chat["id"],
        chat_type=_str(chat.get("type")) or "private",
        user_id=sender["id"],
        text=text,
        thread_id=_int(message.get("message_thread_id")) if message.get("is_topic_message") else None,
        reply_to_user=None if is_topic_root or not isinstance(reply_from, dict) else _int(reply_from.get("id")),
        mentions=tuple(mentions),
        command=command,
        command_target=target,
        command_length=command_length,
        file=file,
    )
