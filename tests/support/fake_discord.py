"""Moved to the plugin test kit: `gateway.testing.platforms.discord` (this name stays for old imports)."""

from gateway.testing.platforms.discord import (
    PREFIX as PREFIX,
    DiscordCall as DiscordCall,
    DiscordMessage as DiscordMessage,
    FakeDiscord as FakeDiscord,
    patched_discord as patched_discord,
)
