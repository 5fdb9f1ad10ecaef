"""Pure helpers of the Discord gateway bot: when to answer, what the prompt is, a thread's name.

Paging and delta handling are the interaction endpoint's (`endpoints.discord.rendering`, the
gateway's `split_text`), so a bot answer and an `/ask` answer look the same. Nothing in this
module does I/O.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["Trigger", "is_reset", "strip_mentions", "thread_name", "trigger_for"]

_THREAD_NAME_MAX = 90  # Discord allows 100
_SPACE = re.compile(r"\s+")


class Trigger(StrEnum):
    """Why the bot answers a message."""

    DIRECT = "dm"  # a direct message to the bot
    MENTION = "mention"  # an explicit @mention of the bot (not @everyone / @here)
    THREAD = "thread"  # any message in a thread the bot started


def trigger_for(*, author_is_bot: bool, is_dm: bool, mentioned: bool, in_own_thread: bool) -> Trigger | None:
    """Whether (and why) to answer a message; bots (this one included) are never answered.

    `mentioned` must be the strict check `bot.id in message.raw_mentions`: discord.py's
    `mentioned_in` is also true for @everyone and @here (platforms.md §2.6).
    """
    if author_is_bot:
        return None
    if is_dm:
        return Trigger.DIRECT
    if mentioned:
        return Trigger.MENTION
    if in_own_thread:
        return Trigger.THREAD
    return None


def strip_mentions(content: str, user_id: int) -> str:
    """`content` without mentions of `user_id` (`<@id>` and the legacy `<@!id>`), trimmed."""
    return re.sub(rf"<@!?{int(user_id)}>", " ", content).strip()


def is_reset(prompt: str, command: str) -> bool:
    """True when the prompt is just the reset word: `reset`, `/reset` or `!reset` (any case)."""
    word = prompt.strip().lower()
    return word.lstrip("/!") == command.lower() and len(word) - len(word.lstrip("/!")) <= 1


def thread_name(prompt: str) -> str:
    """A thread title from the question's first words."""
    line = _SPACE.sub(" ", prompt).strip()
    if not line:
        return "Conversation"
    if len(line) <= _THREAD_NAME_MAX:
        return line
    cut = line[: _THREAD_NAME_MAX - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > _THREAD_NAME_MAX // 2 else cut).rstrip() + "…"
