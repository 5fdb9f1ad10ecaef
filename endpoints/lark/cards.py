"""Lark cards as the chat-delivery engine's adapter (`gateway.plugin.deliver` does the rest).

An answer is a reply to the user's message (in its thread in groups), shown in cards (JSON 2.0)
with one markdown element:

- `CardKitStream` (the engine's native stream; a `ResumableStream`): a CardKit card entity is
  created in streaming mode and sent as the reply; as Dify writes, the markdown element's text is
  replaced with the whole text so far (`PUT …/elements/{id}/content`, which Lark animates), each
  update with a higher sequence number; at the end streaming is closed (`PATCH …/settings`). A
  rerun of the job shows its answer again in the cards the earlier run sent (the sequence numbers
  start above any of that run's). An answer longer than a card goes on in a new card (the engine
  ends a stream at a clean break).
- `LarkReply` (the engine's messages): when CardKit is off or refused (the app lacks the
  `cardkit:card:write` scope), an interactive card message is posted and patched
  (`PATCH /im/v1/messages/{id}`) at the engine's pace.

Errors: a 429 (or code 99991400) is `RateLimited` (the engine waits); while streaming, a
refusal that is not Lark failing becomes `StreamUnavailable`, so the answer goes on in patched
messages. The rest goes up to the job, which maps it to an outcome.
"""

from __future__ import annotations

import json
import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from endpoints.lark.api import LarkAPI, LarkAPIError
from endpoints.lark.render import protect_entities, to_card_markdown
from endpoints.lark.settings import LarkSettings
from gateway.plugin import ChatRules, MessageRef, StreamUnavailable

__all__ = ["ELEMENT", "SEQUENCES_PER_RUN", "CardKitStream", "LarkReply", "ReplyTo", "card", "card_rules"]

ELEMENT = "answer"  # the element_id of the markdown element
SEQUENCES_PER_RUN = 100_000  # a run's sequence numbers start at attempt × this: a rerun's are higher
GONE = frozenset({230011, 231003})  # the message was recalled or is not found: nothing to delete
_SUMMARY_CHARS = 60


def card(text: str, *, streaming: bool = False) -> dict[str, Any]:
    """A JSON 2.0 card showing `text` (card markdown) in its one markdown element."""
    summary = " ".join(text.split())[:_SUMMARY_CHARS]
    config: dict[str, Any] = {"update_multi": True, "streaming_mode": streaming, "summary": {"content": summary}}
    return {
        "schema": "2.0",
        "config": config,
        "body": {"elements": [{"tag": "markdown", "content": text, "element_id": ELEMENT}]},
    }


def card_rules(settings: LarkSettings, *, placeholder: bool = True) -> ChatRules:
    """How an answer looks in Lark cards."""
    return ChatRules(
        limit=settings.card_limit,
        render=to_card_markdown,
        protect=protect_entities,
        edit_interval=settings.edit_interval,
        placeholder=settings.thinking_text if placeholder else None,
    )


def _split(ref: MessageRef) -> tuple[str, str]:
    """(message_id, card_id) of a streamed card's reference."""
    message_id, _, card_id = ref.partition("|")
    return message_id, card_id


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where answers go: a reply to `message_id`, in its thread when `in_thread`."""

    api: LarkAPI
    message_id: str
    in_thread: bool

    async def send(self, content: dict[str, Any]) -> str:
        """Reply with an interactive card; the new message's id."""
        body = {"msg_type": "interactive", "content": json.dumps(content), "reply_in_thread": self.in_thread}
        data = (await self.api.call("POST", f"/im/v1/messages/{self.message_id}/reply", json=body)).get("data")
        message_id = data.get("message_id") if isinstance(data, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise LarkAPIError(200, "the reply has no message_id")
        return message_id

    async def delete(self, message_id: str) -> None:
        try:
            await self.api.call("DELETE", f"/im/v1/messages/{message_id}")
        except LarkAPIError as exc:
            if exc.status != 404 and exc.code not in GONE:  # already gone (recalled by hand): done
                raise


@dataclass
class CardKitStream:
    """CardKit cards streamed as replies to one message (see the module docstring)."""

    reply: ReplyTo
    _: KW_ONLY
    limit: int
    first_sequence: int
    logger: logging.LoggerAdapter[logging.Logger]
    refused: bool = False  # CardKit refused to create a card: the caller may stop trying for a while
    _texts: dict[str, str] = field(default_factory=dict)  # card_id -> the Markdown it shows
    _unsent: dict[str, str] = field(default_factory=dict)  # text -> a card created for it, not sent yet
    _sequence: int = 0

    def __post_init__(self) -> None:
        self._sequence = self.first_sequence

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def start(self, text: str) -> MessageRef:
        # A card created for a reply that was rate limited is sent when the engine tries again.
        card_id = self._unsent.pop(text, None) or await self._create(text)
        try:
            message_id = await self.reply.send({"type": "card", "data": {"card_id": card_id}})
        except BaseException:
            self._unsent[text] = card_id
            raise
        self._texts[card_id] = text
        return f"{message_id}|{card_id}"

    async def _create(self, text: str) -> str:
        entity = {"type": "card_json", "data": json.dumps(card(to_card_markdown(text), streaming=True))}
        try:
            data = (await self.reply.api.call("POST", "/cardkit/v1/cards", json=entity)).get("data")
        except LarkAPIError as exc:
            if exc.retryable:
                raise
            self.refused = True
            self.logger.warning("CardKit refused a card (%s); patching card messages instead", exc)
            raise StreamUnavailable(f"CardKit refused: {exc.message}") from None
        card_id = data.get("card_id") if isinstance(data, dict) else None
        if not isinstance(card_id, str) or not card_id:
            raise StreamUnavailable("CardKit created no card")
        return card_id

    async def append(self, ref: MessageRef, text: str) -> None:
        _, card_id = _split(ref)
        await self._content(card_id, self._texts.get(card_id, "") + text)

    async def stop(self, ref: MessageRef) -> None:
        _, card_id = _split(ref)
        await self._settings(card_id, streaming=False)

    async def resume(self, ref: MessageRef, text: str) -> None:
        _, card_id = _split(ref)
        await self._settings(card_id, streaming=True)
        await self._content(card_id, text)

    async def _content(self, card_id: str, text: str) -> None:
        """Show `text` in the card; kept only once Lark has it (a rate-limited call is made again)."""
        body = {"content": to_card_markdown(text), "sequence": self._next()}
        await self._streaming(f"/cardkit/v1/cards/{card_id}/elements/{ELEMENT}/content", "PUT", body)
        self._texts[card_id] = text

    async def _settings(self, card_id: str, *, streaming: bool) -> None:
        config: dict[str, Any] = {"streaming_mode": streaming}
        if not streaming:
            config["summary"] = {"content": " ".join(self._texts.get(card_id, "").split())[:_SUMMARY_CHARS]}
        body = {"settings": json.dumps({"config": config}), "sequence": self._next()}
        await self._streaming(f"/cardkit/v1/cards/{card_id}/settings", "PATCH", body)

    async def _streaming(self, path: str, method: str, body: dict[str, Any]) -> None:
        try:
            await self.reply.api.call(method, path, json=body)
        except LarkAPIError as exc:
            if exc.retryable:
                raise
            # e.g. the card's streaming closed on its own (after 10 minutes): go on in messages
            self.logger.warning("CardKit refused an update (%s); patching card messages instead", exc)
            raise StreamUnavailable(f"CardKit refused an update: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class LarkReply:
    """The cards of one answer, replying to one message."""

    reply: ReplyTo
    _: KW_ONLY
    rules: ChatRules
    native: CardKitStream | None = None
    original: MessageRef | None = None

    async def post(self, text: str) -> MessageRef:
        return await self.reply.send(card(text))

    async def edit(self, ref: MessageRef, text: str) -> None:
        await self.reply.api.call("PATCH", f"/im/v1/messages/{ref}", json={"content": json.dumps(card(text))})

    async def delete(self, ref: MessageRef) -> None:
        message_id, _ = _split(ref)  # a streamed card's message, or a message
        await self.reply.delete(message_id)

    def typing(self) -> AbstractAsyncContextManager[object] | None:
        return None  # Lark has no typing indicator for bots: the placeholder card says "…thinking"

    def writes_left(self) -> int | None:
        return None
