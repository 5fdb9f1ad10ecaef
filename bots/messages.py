"""A discord.py channel as the chat-delivery engine's adapter (`gateway.plugin.deliver`).

The engine paces, pages and edits; this adapter only sends, edits and deletes. Messages are
named by their id and reached again through `channel.get_partial_message(id)` (no fetch).
discord.py waits out Discord's 429s itself, so nothing here raises `RateLimited`.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

import discord

from gateway.plugin import ChatRules, MessageRef, NativeStream

__all__ = ["NO_MENTIONS", "ChannelReplies"]

NO_MENTIONS = discord.AllowedMentions.none()


class ChannelReplies:
    """Messages in one channel (or thread); the first one replies to `reply_to`, when given.

    `channel` is any messageable channel with `get_partial_message` (text, thread, DM).
    """

    original: MessageRef | None = None
    native: NativeStream | None = None

    def __init__(self, channel: Any, rules: ChatRules, reply_to: discord.Message | None = None) -> None:
        self._channel = channel
        self.rules = rules
        self._reply_to = reply_to

    async def post(self, text: str) -> MessageRef:
        reference, self._reply_to = self._reply_to, None
        if reference is None:
            sent = await self._channel.send(text, allowed_mentions=NO_MENTIONS)
        else:
            sent = await self._channel.send(
                text, allowed_mentions=NO_MENTIONS, reference=reference, mention_author=False
            )
        return str(sent.id)

    async def edit(self, ref: MessageRef, text: str) -> None:
        await self._channel.get_partial_message(int(ref)).edit(content=text, allowed_mentions=NO_MENTIONS)

    async def delete(self, ref: MessageRef) -> None:
        with contextlib.suppress(discord.NotFound):  # already gone (deleted by hand)
            await self._channel.get_partial_message(int(ref)).delete()

    def typing(self) -> AbstractAsyncContextManager[object] | None:
        typing: AbstractAsyncContextManager[object] = self._channel.typing()
        return typing

    def writes_left(self) -> int | None:
        return None
