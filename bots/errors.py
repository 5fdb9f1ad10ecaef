"""Start-up failures of a bot, turned into messages that say what to fix and where."""

from __future__ import annotations

import discord

__all__ = ["BotStartupError", "intents_message", "login_failure_message", "startup_error"]

PORTAL = "https://discord.com/developers/applications"


class BotStartupError(Exception):
    """The bot cannot start until a person changes something; `message` says what."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def login_failure_message(endpoint_id: str) -> str:
    return (
        f"Discord refused the bot token of endpoint {endpoint_id} (discord.LoginFailure). "
        f"Make a new one in the Developer Portal ({PORTAL}) → your application → Bot → Reset Token, "
        f"then store it: dify-gateway endpoints update {endpoint_id} --set bot_token=NEW_TOKEN"
    )


def intents_message(endpoint_id: str) -> str:
    return (
        f"Discord closed the gateway connection of endpoint {endpoint_id} with code 4014 "
        "(discord.PrivilegedIntentsRequired): the bot reads messages, which needs the Message Content "
        f"intent. Enable it in the Developer Portal ({PORTAL}) → your application → Bot → "
        "Privileged Gateway Intents → Message Content Intent, save, and start the bot again."
    )


def startup_error(exc: BaseException, endpoint_id: str) -> BotStartupError | None:
    """The person-facing error for a failure while connecting, or None when it isn't one of those."""
    if isinstance(exc, discord.LoginFailure):
        return BotStartupError(login_failure_message(endpoint_id))
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return BotStartupError(intents_message(endpoint_id))
    return None
