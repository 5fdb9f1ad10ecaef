"""The Discord gateway bot: a `commands.Bot` given its dependencies, as in discord.py's advanced startup.

    bot = GatewayBot(contexts=EndpointContexts(host, endpoint_id), clock=host.clock)
    async with bot:
        await bot.start(token)

Extensions (the chat cog) load in `setup_hook`, which runs once before any event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import discord
from discord.ext import commands

from gateway.plugin import Clock, Context

__all__ = ["DEFAULT_EXTENSIONS", "GatewayBot", "bot_intents"]

DEFAULT_EXTENSIONS = ("bots.cogs.chat",)


def bot_intents() -> discord.Intents:
    """Default intents plus Message Content (privileged: Developer Portal → Bot → Privileged Gateway
    Intents): the bot reads the messages of threads it started, which mention nobody."""
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


class GatewayBot(commands.Bot):
    """The bot of one `discord` endpoint.

    Args:
        contexts: the endpoint's plugin context of the moment (None while it is disabled).
        clock: paces edits (the gateway's clock).
        extensions: modules loaded in `setup_hook`.
    """

    def __init__(
        self,
        *,
        contexts: Callable[[], Awaitable[Context | None]],
        clock: Clock,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            help_command=None,
            # Nothing the bot sends may ping anyone, whatever a cog forgets to pass.
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.contexts = contexts
        self.clock = clock
        self._initial_extensions = tuple(extensions)

    async def setup_hook(self) -> None:
        for extension in self._initial_extensions:
            await self.load_extension(extension)

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: the chat cog's listener decides what to answer."""
