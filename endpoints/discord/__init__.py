"""The built-in `discord` endpoint plugin (see `endpoints.discord.plugin`)."""

from endpoints.discord.plugin import plugin

__all__ = ["plugin"]
