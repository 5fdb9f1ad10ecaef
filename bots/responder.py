"""Answering one Discord message through the endpoint's Dify apps (the bot's side of the bridge).

The same conversation mapping, memory and per-conversation ordering as the `discord` endpoint's
`/ask`: `discord:{guild}:{channel}` (the thread's id inside a thread) and `discord:{user_id}`,
through the endpoint's `ctx.apps`. The answer is shown by the chat-delivery engine with the same
rules as `/ask` (`endpoints.discord.rendering.chat_rules`): edited about once a second while it
streams, going on in new messages past 2,000 characters. The typing indicator shows until the
first words. When the gateway is full (`Overloaded`) the bot asks again after Retry-After, still
"typing…", before it says it is busy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import discord

from bots.messages import ChannelReplies
from bots.rendering import Trigger, is_reset, strip_mentions, thread_name
from endpoints.discord.interactions import conversation_key, user_key
from endpoints.discord.rendering import chat_rules
from endpoints.discord.settings import DiscordSettings
from gateway.plugin import Answer, AnswerSource, Clock, Context, GatewayError, MemoryMessages, Overloaded, deliver

__all__ = ["Busy", "Responder"]

logger = logging.getLogger(__name__)

RESET_DONE = "Done: your next message starts a new conversation here."
EMPTY_PROMPT = "Ask me something: mention me with your question."
BUSY = "the assistant is busy; please ask again in a minute"
OVERLOAD_ATTEMPTS = 3  # an overloaded gateway is asked this often (Retry-After apart) before giving up
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440  # a day; Discord allows 60, 1440, 4320 or 10080


class Busy(GatewayError):
    """The gateway stayed full through every attempt: the answer says so (its failure note)."""

    code = "busy"


class Responder:
    """Answers messages the chat cog picked (`Trigger`), with the endpoint context of the moment."""

    def __init__(self, *, contexts: Callable[[], Awaitable[Context[DiscordSettings] | None]], clock: Clock) -> None:
        self._contexts = contexts
        self._clock = clock

    async def respond(self, message: discord.Message, trigger: Trigger, me_id: int) -> Answer | None:
        """Answer `message`; the answer (None when there was none to give, or Dify failed)."""
        ctx = await self._contexts()
        if ctx is None:  # the endpoint is disabled
            return None
        settings = ctx.settings
        prompt = strip_mentions(message.content, me_id)
        channel: Any = message.channel
        guild_id = message.guild.id if message.guild is not None else None
        rules = chat_rules(settings.edit_interval)
        if not prompt:
            await ChannelReplies(channel, rules, message).post(EMPTY_PROMPT)
            return None
        if is_reset(prompt, settings.reset_command):
            await ctx.apps.reset(conversation_key(guild_id, channel.id), user=user_key(message.author.id))
            await ChannelReplies(channel, rules, message).post(RESET_DONE)
            return None
        reply_to: discord.Message | None = message
        if trigger is Trigger.MENTION and settings.bot_threads and isinstance(channel, discord.TextChannel):
            try:
                channel = await message.create_thread(
                    name=thread_name(prompt), auto_archive_duration=THREAD_ARCHIVE_MINUTES
                )
                reply_to = None
            except discord.HTTPException as exc:  # e.g. no "Create Public Threads" permission
                logger.info("could not start a thread (%s): answering in the channel", exc.status)
        key, user = conversation_key(guild_id, channel.id), user_key(message.author.id)
        done = await deliver(
            self._patient(lambda: ctx.apps.stream(prompt, user=user, conversation_key=key)),
            ChannelReplies(channel, rules, reply_to),
            clock=self._clock,
            posted=MemoryMessages(),  # a live message is answered once: no rerun to resume
        )
        return done.answer

    @contextlib.asynccontextmanager
    async def _patient(
        self, open_stream: Callable[[], AbstractAsyncContextManager[AnswerSource]]
    ) -> AsyncIterator[AnswerSource]:
        """The answer, asked for again (Retry-After apart) while the gateway is full; `Busy` at last."""
        async with contextlib.AsyncExitStack() as stack:
            for attempt in range(1, OVERLOAD_ATTEMPTS + 1):
                try:
                    stream = await stack.enter_async_context(open_stream())
                    break
                except Overloaded as exc:
                    if attempt == OVERLOAD_ATTEMPTS:
                        raise Busy(BUSY) from None
                    await self._clock.sleep(exc.retry_after)
            yield stream
