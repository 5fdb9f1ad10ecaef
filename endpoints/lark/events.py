"""What an `im.message.receive_v1` event asks for, decided from the decrypted event alone (pure).

`classify(event)` gives a `LarkTrigger` to answer, or why the event is ignored: other event
types, messages of bots and apps (the bot's own among them), message types other than text and
post (rich text), and group messages that mention no one (the job still checks that the bot is
among those mentioned: its open_id may not be known yet when the event arrives).

Conversations: one per p2p chat; in groups one per thread (the thread's root message, or the
message itself, whose reply starts the thread), and per person (the gateway keys memory by
user too). The Dify user is `lark:{tenant}:{open_id}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.plugin import as_text

__all__ = ["LarkTrigger", "Mention", "classify", "message_text"]

MESSAGE_EVENT = "im.message.receive_v1"
_SPACES = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True, slots=True)
class Mention:
    """A mention in a message: its placeholder in the text (`@_user_1`), whom, and the name shown."""

    key: str
    open_id: str
    name: str


@dataclass(frozen=True, slots=True)
class LarkTrigger:
    """A message to answer. `text` still holds the mention placeholders (see `question`)."""

    event_id: str
    tenant: str
    message_id: str
    chat_id: str
    chat_type: str
    sender: str
    text: str
    root_id: str | None = None
    thread_id: str | None = None
    mentions: tuple[Mention, ...] = ()

    @property
    def is_group(self) -> bool:
        return self.chat_type != "p2p"

    @property
    def conversation_key(self) -> str:
        if not self.is_group:
            return f"lark:{self.tenant}:{self.chat_id}"
        return f"lark:{self.tenant}:{self.chat_id}:{self.root_id or self.message_id}"

    @property
    def dify_user(self) -> str:
        return f"lark:{self.tenant}:{self.sender}"

    def mentions_of(self, open_id: str) -> bool:
        return any(m.open_id == open_id for m in self.mentions)

    def question(self, bot_open_id: str | None) -> str:
        """The text without the bot's own mention, other mentions as their names."""
        text = self.text
        # Longest keys first: "@_user_1" is a prefix of "@_user_10".
        for mention in sorted(self.mentions, key=lambda m: len(m.key), reverse=True):
            text = text.replace(mention.key, "" if mention.open_id == bot_open_id else f"@{mention.name}")
        return _SPACES.sub(" ", text).strip()

    def to_payload(self) -> dict[str, Any]:
        # Spelled out: built on every ack, where a loop over the fields costs twice as much.
        return {
            "event_id": self.event_id,
            "tenant": self.tenant,
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "chat_type": self.chat_type,
            "sender": self.sender,
            "text": self.text,
            "root_id": self.root_id,
            "thread_id": self.thread_id,
            "mentions": [[m.key, m.open_id, m.name] for m in self.mentions],
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> LarkTrigger:
        fields: dict[str, Any] = {name: payload.get(name) for name in cls.__dataclass_fields__}
        fields["mentions"] = tuple(Mention(*item) for item in payload.get("mentions") or ())
        return cls(**fields)


def _post_text(content: Mapping[str, Any]) -> str:
    """A post (rich text) as plain text: its title, then each paragraph on a line."""
    if "content" not in content:  # {"zh_cn": {...}}: the first language given
        content = next((v for v in content.values() if isinstance(v, dict)), {})
    lines = [content["title"]] if isinstance(content.get("title"), str) and content["title"] else []
    paragraphs = content.get("content")
    for paragraph in paragraphs if isinstance(paragraphs, list) else ():
        parts: list[str] = []
        for node in paragraph if isinstance(paragraph, list) else ():
            if not isinstance(node, dict):
                continue
            tag = node.get("tag")
            if tag in ("text", "code_block", "md") and isinstance(node.get("text"), str):
                parts.append(node["text"])
            elif tag == "a":
                label, href = node.get("text"), node.get("href")
                parts.append(f"{label} ({href})" if label and href and label != href else str(href or label or ""))
            elif tag == "at" and isinstance(node.get("user_id"), str):
                parts.append(node["user_id"])  # the placeholder, resolved like a text message's
        lines.append("".join(parts))
    return "\n".join(lines)


def message_text(message_type: str, raw: object) -> str | None:
    """The text of a text or post message's `content` (a JSON string), or None when unreadable."""
    try:
        content = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    if not isinstance(content, dict):
        return None
    if message_type == "text":
        text = content.get("text")
        return text if isinstance(text, str) else None
    return _post_text(content)


def _mentions(raw: object) -> tuple[Mention, ...]:
    found = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            continue
        ids = item.get("id")
        key, name = as_text(item.get("key")), as_text(item.get("name")) or ""
        open_id = as_text(ids.get("open_id")) if isinstance(ids, dict) else None
        if key and open_id:
            found.append(Mention(key, open_id, name))
    return tuple(found)


def classify(event: Mapping[str, Any]) -> LarkTrigger | str:
    """The message to answer in a decrypted v2 event, or why there is none."""
    header, body = event.get("header"), event.get("event")
    if not isinstance(header, dict) or not isinstance(body, dict):
        return "not a v2 event"
    if header.get("event_type") != MESSAGE_EVENT:
        return f"event type {header.get('event_type')!r}"
    sender, message = body.get("sender"), body.get("message")
    if not isinstance(sender, dict) or not isinstance(message, dict):
        return "no sender or message"
    if sender.get("sender_type") != "user":
        return "a bot's or an app's message"
    sender_ids = sender.get("sender_id")
    open_id = as_text(sender_ids.get("open_id")) if isinstance(sender_ids, dict) else None
    event_id, tenant = as_text(header.get("event_id")), as_text(header.get("tenant_key"))
    message_id, chat_id = as_text(message.get("message_id")), as_text(message.get("chat_id"))
    chat_type = as_text(message.get("chat_type"))
    if not (open_id and event_id and tenant and message_id and chat_id and chat_type):
        return "missing ids"
    message_type = message.get("message_type")
    if message_type not in ("text", "post"):
        return f"message type {message_type!r}"
    text = message_text(str(message_type), message.get("content"))
    if text is None:
        return "unreadable content"
    mentions = _mentions(message.get("mentions"))
    if chat_type != "p2p" and not mentions:
        return "a group message that mentions no one"
    return LarkTrigger(
        event_id=event_id,
        tenant=tenant,
        message_id=message_id,
        chat_id=chat_id,
        chat_type=chat_type,
        sender=open_id,
        text=text,
        root_id=as_text(message.get("root_id")),
        thread_id=as_text(message.get("thread_id")),
        mentions=mentions,
    )
