"""Discord interaction payloads and responses (platforms.md §2.1, §2.5), and the conversation mapping.

Pure: no I/O. The conversation mapping is shared with the gateway bot (`bots/`), so a person
talking to the bot and using `/ask` in the same channel continues one conversation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.plugin import as_text

__all__ = [
    "APPLICATION_COMMAND",
    "AUTOCOMPLETE",
    "AUTOCOMPLETE_RESULT",
    "CHANNEL_MESSAGE",
    "DEFERRED_CHANNEL_MESSAGE",
    "EPHEMERAL",
    "NO_MENTIONS",
    "PING",
    "PONG",
    "QUESTION_OPTION",
    "InteractionCommand",
    "command_definitions",
    "conversation_key",
    "message_response",
    "user_key",
]

# Interaction types
PING = 1
APPLICATION_COMMAND = 2
AUTOCOMPLETE = 4
# Interaction callback types
PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
AUTOCOMPLETE_RESULT = 8

EPHEMERAL = 1 << 6
# Generated text must never ping @everyone, roles or users.
NO_MENTIONS: dict[str, list[str]] = {"parse": []}
QUESTION_OPTION = "question"
_STRING_OPTION = 3
_CHAT_INPUT = 1
# Where global commands may be used: guilds, DMs with the bot, group DMs.
_CONTEXTS = [0, 1, 2]
_MAX_QUESTION = 4000


def conversation_key(guild_id: object, channel_id: object) -> str:
    """The conversation of a channel; in a thread `channel_id` is the thread's id, in DMs there is no guild."""
    return f"discord:{guild_id or 'dm'}:{channel_id}"


def user_key(user_id: object) -> str:
    """The Dify `user` of a Discord user."""
    return f"discord:{user_id}"


def _text(value: object) -> str:
    if type(value) is str and value:  # the common case, without the call
        return value
    text = as_text(value)
    if text is None:
        raise ValueError("missing or malformed field")
    return text


@dataclass(frozen=True, slots=True)
class InteractionCommand:
    """An APPLICATION_COMMAND interaction, reduced to what answering it needs."""

    id: str
    token: str
    application_id: str
    name: str
    channel_id: str
    user_id: str
    guild_id: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> InteractionCommand:
        """Raises ValueError when a field the answer needs is missing or malformed."""
        data = payload.get("data")
        if not isinstance(data, Mapping):
            raise ValueError("missing data")
        member = payload.get("member")
        user = member.get("user") if isinstance(member, Mapping) else payload.get("user")
        if not isinstance(user, Mapping):
            raise ValueError("missing user")
        channel = payload.get("channel")
        channel_id = payload.get("channel_id") or (channel.get("id") if isinstance(channel, Mapping) else None)
        raw_options = data.get("options") or []
        if not isinstance(raw_options, list):
            raise ValueError("malformed options")
        options: dict[str, str] = {}
        for option in raw_options:
            if isinstance(option, Mapping) and isinstance(option.get("name"), str) and "value" in option:
                options[option["name"]] = str(option["value"])
        guild = payload.get("guild_id")
        return cls(
            id=_text(payload.get("id")),
            token=_text(payload.get("token")),
            application_id=_text(payload.get("application_id")),
            name=_text(data.get("name")),
            channel_id=_text(channel_id),
            user_id=_text(user.get("id")),
            guild_id=_text(guild) if guild else None,
            options=options,
        )

    @property
    def conversation_key(self) -> str:
        return conversation_key(self.guild_id, self.channel_id)

    @property
    def user(self) -> str:
        return user_key(self.user_id)


def message_response(content: str, *, ephemeral: bool = False) -> dict[str, Any]:
    """A CHANNEL_MESSAGE_WITH_SOURCE interaction response."""
    data: dict[str, Any] = {"content": content, "allowed_mentions": NO_MENTIONS}
    if ephemeral:
        data["flags"] = EPHEMERAL
    return {"type": CHANNEL_MESSAGE, "data": data}


def command_definitions(ask: str, reset: str, *, global_: bool) -> list[dict[str, Any]]:
    """The slash commands to register (a bulk overwrite); global ones also work in DMs."""
    commands: list[dict[str, Any]] = [
        {
            "name": ask,
            "type": _CHAT_INPUT,
            "description": "Ask the assistant",
            "options": [
                {
                    "type": _STRING_OPTION,
                    "name": QUESTION_OPTION,
                    "description": "Your question",
                    "required": True,
                    "max_length": _MAX_QUESTION,
                }
            ],
        },
        {"name": reset, "type": _CHAT_INPUT, "description": "Start a new conversation in this channel"},
    ]
    if global_:
        for command in commands:
            command["contexts"] = list(_CONTEXTS)
    return commands
