"""The chat cog: a thin `on_message` listener; the decisions are pure helpers, the work is `Responder`'s."""

from __future__ import annotations

import discord
from discord.ext import commands

from bots.bot import GatewayBot
from bots.rendering import trigger_for
from bots.responder import Responder

__all__ = ["Chat", "setup"]

# What people write. System messages (a thread renamed, someone added, a pin) have a human author
# too, and a rename carries the new title as its content: none of them is a question.
_USER_MESSAGES = frozenset({discord.MessageType.default, discord.MessageType.reply})


class Chat(commands.Cog):
    """Answers direct messages, mentions, and messages in threads the bot started."""

    def __init__(self, bot: commands.Bot, responder: Responder) -> None:
        self.bot = bot
        self.responder = responder

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.type not in _USER_MESSAGES:
            return
        channel = message.channel
        trigger = trigger_for(
            author_is_bot=message.author.bot,
            is_dm=isinstance(channel, discord.DMChannel),
            mentioned=me.id in message.raw_mentions,
            in_own_thread=isinstance(channel, discord.Thread) and channel.owner_id == me.id,
        )
        if trigger is not None:
            await self.responder.respond(message, trigger, me.id)


async def setup(bot: commands.Bot) -> None:
    """Extension entry point: `await bot.load_extension("bots.cogs.chat")` on a `GatewayBot`."""
    if not isinstance(bot, GatewayBot):
        raise TypeError("the chat cog needs a GatewayBot (it brings the endpoint context and the clock)")
    responder = Responder(contexts=bot.contexts, clock=bot.clock)
    await bot.add_cog(Chat(bot, responder))
