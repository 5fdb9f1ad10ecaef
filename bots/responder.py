"""Answering one Discord message through the endpoint's Dify apps (the bot's side of the bridge).

The same conversation mapping, memory and per-conversation ordering as the `discord` endpoint's
`/ask`: `discord:{guild}:{channel}` (the thread's id inside a thread) and `discord:{user_id}`,
through the endpoint's `ctx.apps`. Rendering is shared too (`StreamRenderer`): the reply is
edited about once a second while the answer streams and goes on in new messages past 2,000
characters. The typing indicator shows until the first words arrive.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord

from bots.rendering import Trigger, is_reset, strip_mentions, thread_name
from endpoints.discord.interactions import conversation_key, user_key
from endpoints.discord.messages import PagedMessages, StreamRenderer
from endpoints.discord.rendering import apply_delta, failure_text
from gateway.plugin import Answer, Clock, Context, EditThrottle, Overloaded, UpstreamError

__all__ = ["ChannelMessages", "Responder"]

logger = logging.getLogger(__name__)

RESET_DONE = "Done: your next message starts a new conversation here."
EMPTY_PROMPT = "Ask me something: mention me with your question."
OVERLOAD_ATTEMPTS = 3  # an overloaded gateway is asked this often (Retry-After apart) before giving up
NO_MENTIONS = discord.AllowedMentions.none()
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440  # a day; Discord allows 60, 1440, 4320 or 10080


class ChannelMessages:
    """A `MessageSink` over a discord.py channel; the first message replies to `reply_to`.

    discord.py waits out 429s itself, so `wait` changes nothing here.
    """

    def __init__(self, channel: discord.abc.Messageable, reply_to: discord.Message | None = None) -> None:
        self._channel = channel
        self._reply_to = reply_to

    async def send(self, content: str, *, wait: bool) -> discord.Message:
        reference, self._reply_to = self._reply_to, None
        if reference is None:
            return await self._channel.send(content, allowed_mentions=NO_MENTIONS)
        return await self._channel.send(
            content, allowed_mentions=NO_MENTIONS, reference=reference, mention_author=False
        )

    async def edit(self, handle: discord.Message, content: str, *, wait: bool) -> None:
        await handle.edit(content=content, allowed_mentions=NO_MENTIONS)

    async def delete(self, handle: discord.Message, *, wait: bool) -> None:
        await handle.delete()


class Responder:
    """Answers messages the chat cog picked (`Trigger`), with the endpoint context of the moment."""

    def __init__(self, *, contexts: Callable[[], Awaitable[Context | None]], clock: Clock) -> None:
        self._contexts = contexts
        self._clock = clock

    async def respond(self, message: discord.Message, trigger: Trigger, me_id: int) -> Answer | None:
        """Answer `message`; the answer (None when there was none to give, or Dify failed)."""
        ctx = await self._contexts()
        if ctx is None:  # the endpoint is disabled
            return None
        settings: Any = ctx.settings
        prompt = strip_mentions(message.content, me_id)
        channel: Any = message.channel
        guild_id = message.guild.id if message.guild is not None else None
        if not prompt:
            await ChannelMessages(channel, message).send(EMPTY_PROMPT, wait=True)
            return None
        if is_reset(prompt, settings.reset_command):
            await ctx.apps.reset(conversation_key(guild_id, channel.id), user=user_key(message.author.id))
            await ChannelMessages(channel, message).send(RESET_DONE, wait=True)
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
        renderer = StreamRenderer(
            PagedMessages(ChannelMessages(channel, reply_to)), EditThrottle(settings.edit_interval, self._clock)
        )
        return await self._stream(ctx, renderer, channel, prompt, conversation_key(guild_id, channel.id), message)

    async def _stream(
        self, ctx: Context, renderer: StreamRenderer, channel: Any, prompt: str, key: str, message: discord.Message
    ) -> Answer | None:
        text, answer = "", None
        async with contextlib.AsyncExitStack() as typing:
            await typing.enter_async_context(channel.typing())
            for attempt in range(1, OVERLOAD_ATTEMPTS + 1):
                try:
                    async with ctx.apps.stream(prompt, user=user_key(message.author.id), conversation_key=key) as s:
                        async for delta in s:
                            text = apply_delta(text, delta.kind, delta.text)
                            if text.strip():
                                await typing.aclose()  # the first words are on their way: stop "typing…"
                            await renderer.update(text)
                        answer = s.answer
                except Overloaded as exc:  # no answer place came free: still "typing…", try again shortly
                    if attempt == OVERLOAD_ATTEMPTS:
                        text = failure_text(text, "the assistant is busy; please ask again in a minute")
                    else:
                        await self._clock.sleep(exc.retry_after)
                        continue
                except UpstreamError as exc:
                    text = failure_text(text, exc.message)
                break
        await renderer.finish(text)
        return answer
