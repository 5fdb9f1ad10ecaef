"""Discord messages as the chat-delivery engine's adapter (`gateway.plugin.deliver`).

An `/ask` answer is shown through two of them (platforms.md §2.1 "Streaming through an
interaction"): the interaction's webhook with its token (the deferred response `@original`,
then follow-ups) until the token's deadline, then, with a bot token, channel messages (the
engine's `Handover`). Pacing, paging at 2,000 characters, Retry-After, reruns and notes are
the engine's; here are only Discord's calls and rules.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from endpoints.discord.api import DiscordAPI, DiscordAPIError, message_id
from endpoints.discord.interactions import NO_MENTIONS
from gateway.plugin import ChatRules, MessageRef, NativeStream

__all__ = ["ORIGINAL", "DiscordMessages"]

ORIGINAL = "@original"  # the deferred response of an interaction


def _body(text: str) -> dict[str, Any]:
    return {"content": text, "allowed_mentions": NO_MENTIONS}


class DiscordMessages:
    """Messages created by POST to `create`, edited and deleted at `{messages}/{id}`."""

    native: NativeStream | None = None  # Discord has no native streaming: answers are edited

    def __init__(
        self,
        api: DiscordAPI,
        rules: ChatRules,
        *,
        create: str,
        messages: str,
        bot: bool = False,
        original: MessageRef | None = None,
    ) -> None:
        self._api = api
        self.rules = rules
        self._create = create
        self._messages = messages
        self._bot = bot
        self.original = original

    @classmethod
    def interaction(cls, api: DiscordAPI, rules: ChatRules, application_id: str, token: str) -> DiscordMessages:
        """The interaction's deferred response and follow-ups, with its token (no bot token)."""
        webhook = f"/webhooks/{application_id}/{token}"
        return cls(api, rules, create=webhook, messages=f"{webhook}/messages", original=ORIGINAL)

    @classmethod
    def channel(cls, api: DiscordAPI, rules: ChatRules, channel_id: str) -> DiscordMessages:
        """Messages in a channel, with the bot token."""
        path = f"/channels/{channel_id}/messages"
        return cls(api, rules, create=path, messages=path, bot=True)

    async def post(self, text: str) -> MessageRef:
        return message_id(await self._api.request("POST", self._create, json=_body(text), bot=self._bot))

    async def edit(self, ref: MessageRef, text: str) -> None:
        await self._api.request("PATCH", f"{self._messages}/{ref}", json=_body(text), bot=self._bot)

    async def delete(self, ref: MessageRef) -> None:
        try:
            await self._api.request("DELETE", f"{self._messages}/{ref}", bot=self._bot)
        except DiscordAPIError as exc:
            if exc.status != 404:  # already gone (deleted by hand): nothing left to do
                raise

    def typing(self) -> AbstractAsyncContextManager[object] | None:
        return None  # the deferred response already shows "thinking…"

    def writes_left(self) -> int | None:
        return None
