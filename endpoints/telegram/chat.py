"""A Telegram chat as the chat-delivery engine's adapter (`gateway.plugin.deliver` does the rest).

- `TelegramChat`: `sendMessage` / `editMessageText` / `deleteMessage` in HTML parse mode (in a
  forum topic, and in groups as a reply to the question), "typing…" (`sendChatAction`, 5 s each,
  repeated) until the first words; when Telegram refuses the markup ("can't parse entities"),
  the same text goes again as plain text.
- `TelegramDraft`: `sendMessageDraft` previews of a private chat's answer (each page its own
  draft); a refusal other than a rate limit makes the engine go on with edited messages.
- `chat_rules`: how an answer looks (Telegram HTML rendered page by page, 4,096 characters
  after entity parsing, `<think>` hidden); in groups a placeholder edited every few seconds
  (Telegram allows about 20 messages a minute in a group).
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

from endpoints.telegram.api import TelegramAPI, TelegramError
from endpoints.telegram.render import to_html, to_plain
from endpoints.telegram.settings import TelegramSettings
from gateway.plugin import (
    ChatRules,
    Clock,
    GatewayError,
    MessageRef,
    NativeStream,
    StreamUnavailable,
    default_failure_note,
    hide_reasoning,
    repeating,
)

__all__ = ["MESSAGE_LIMIT", "TelegramChat", "TelegramDraft", "chat_rules"]

logger = logging.getLogger(__name__)

# Telegram's limit is 4,096 characters after entity parsing, counted in UTF-16 units; pages are cut
# in the Markdown, whose rendering shows no more except for the word joiners that defuse @mentions
# (a margin for them). A page that is over all the same (many @s, emoji) is cut again (`fits`).
MESSAGE_LIMIT = 4000
TELEGRAM_MAX_TEXT = 4096
TYPING_EVERY = 4.0  # "typing…" lasts 5 s
EMPTY_ANSWER = "*(The app returned an empty answer.)*"


def failure_note(error: GatewayError, partial: bool) -> str:
    return f"*{default_failure_note(error, partial)}*"


def fits(rendered: str) -> bool:
    """Whether Telegram takes `rendered` (HTML) as one message."""
    return len(to_plain(rendered).encode("utf-16-le")) // 2 <= TELEGRAM_MAX_TEXT


def chat_rules(settings: TelegramSettings, *, group: bool) -> ChatRules:
    def visible(text: str, final: bool) -> str:
        return text if settings.show_reasoning else hide_reasoning(text, partial=not final)

    return ChatRules(
        limit=MESSAGE_LIMIT,
        render=to_html,
        render_pages=True,
        fits=fits,
        visible=visible,
        edit_interval=settings.group_edit_interval if group else settings.edit_interval,
        placeholder=settings.thinking_text if group else None,
        empty_text=EMPTY_ANSWER,
        failure_note=failure_note,
    )


class _Sender:
    """Calls that carry a text in HTML parse mode, plain text when Telegram refuses the markup."""

    def __init__(self, api: TelegramAPI, chat_id: int, thread_id: int | None) -> None:
        self.api = api
        self.chat_id = chat_id
        self.thread_id = thread_id

    async def send(self, method: str, text: str, **params: Any) -> Any:
        params = {"chat_id": self.chat_id, **params}
        try:
            return await self.api.call(method, text=text, parse_mode="HTML", **params)
        except TelegramError as exc:
            if not exc.bad_markup:
                raise
            logger.warning("Telegram refused the answer's markup (%s); sent as plain text", exc.description[:120])
        return await self.api.call(method, text=to_plain(text), **params)


class TelegramChat:
    """One chat (and forum topic); in groups answers reply to the question (`reply_to`)."""

    native: NativeStream | None = None
    original: MessageRef | None = None

    def __init__(
        self,
        api: TelegramAPI,
        chat_id: int,
        *,
        rules: ChatRules,
        clock: Clock,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> None:
        self._sender = _Sender(api, chat_id, thread_id)
        self.rules = rules
        self._clock = clock
        self._reply_to = reply_to

    async def post(self, text: str) -> MessageRef:
        sender = self._sender
        reply = {"message_id": self._reply_to, "allow_sending_without_reply": True} if self._reply_to else None
        message = await sender.send(
            "sendMessage",
            text,
            message_thread_id=sender.thread_id,
            reply_parameters=reply,
            link_preview_options={"is_disabled": True},
        )
        if not isinstance(message, dict) or not isinstance(message.get("message_id"), int):
            raise TelegramError(0, "Telegram sent a message without a message_id")
        return str(message["message_id"])

    async def edit(self, ref: MessageRef, text: str) -> None:
        try:
            await self._sender.send(
                "editMessageText", text, message_id=int(ref), link_preview_options={"is_disabled": True}
            )
        except TelegramError as exc:
            if not exc.not_modified:  # the message shows this text already
                raise

    async def delete(self, ref: MessageRef) -> None:
        try:
            await self._sender.api.call("deleteMessage", chat_id=self._sender.chat_id, message_id=int(ref))
        except TelegramError as exc:
            if not exc.gone:
                raise

    def typing(self) -> AbstractAsyncContextManager[object] | None:
        sender = self._sender
        action = partial(
            sender.api.call,
            "sendChatAction",
            chat_id=sender.chat_id,
            action="typing",
            message_thread_id=sender.thread_id,
        )
        return repeating(action, every=TYPING_EVERY, clock=self._clock)

    def writes_left(self) -> int | None:
        return None


class TelegramDraft:
    """`sendMessageDraft` in a private chat: page N of the answer is draft `base_id + N`."""

    def __init__(self, api: TelegramAPI, chat_id: int, *, base_id: int, thread_id: int | None = None) -> None:
        self._sender = _Sender(api, chat_id, thread_id)
        self._base_id = base_id

    async def show(self, text: str, page: int) -> None:
        try:
            await self._sender.send(
                "sendMessageDraft", text, draft_id=self._base_id + page, message_thread_id=self._sender.thread_id
            )
        except TelegramError as exc:
            if exc.status == 0 or exc.status >= 500:
                raise  # Telegram is failing, not refusing drafts: the job runs again
            raise StreamUnavailable(f"Telegram refused a draft: {exc.description[:120]}") from None
