"""Moved to the plugin test kit: `gateway.testing.platforms.discord` (this name stays for old imports)."""

from gateway.testing.platforms.discord import (
    PREFIX as PREFIX,
    Call as Call,
    FakeDiscord as FakeDiscord,
    Message as Message,
    patched_discord as patched_discord,
)
