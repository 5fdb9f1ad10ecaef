"""How a Discord answer looks: the limit of a message, and the notes an answer may end with.

Discord refuses `content` over 2,000 characters ("Must be 2000 or fewer in length"), and bridges
that cut at `[:2000]` lose text (LangBot#1472): the chat-delivery engine pages answers at
`MAX_CONTENT` (code fences closed and reopened with their language). Shared by `/ask` and the
gateway bot (`bots/`), so both answers look the same.
"""

from __future__ import annotations

from gateway.plugin import ChatRules, GatewayError, default_failure_note

__all__ = ["CONTINUED_NOTE", "EMPTY_ANSWER", "LATE_NOTE", "MAX_CONTENT", "chat_rules", "failure_note"]

MAX_CONTENT = 2000  # Discord's limit on a message's `content`
EMPTY_ANSWER = "*(The assistant returned an empty answer.)*"
LATE_NOTE = "*(The answer stops here: Discord gives a slash command 15 minutes to answer, and this one took longer.)*"
CONTINUED_NOTE = "*(The answer continues below.)*"


def failure_note(error: GatewayError, partial: bool) -> str:
    """The engine's note in italics, after the text shown so far (or alone): it names the failure's
    code, never its message (Dify's text may name internal hosts; it goes to the log)."""
    return f"*{default_failure_note(error, partial)}*"


def chat_rules(edit_interval: float, *, expires_at: float | None = None) -> ChatRules:
    """Discord's rules for the engine; `expires_at`: when an interaction token stops being used."""
    return ChatRules(
        limit=MAX_CONTENT,
        edit_interval=edit_interval,
        empty_text=EMPTY_ANSWER,
        failure_note=failure_note,
        expires_at=expires_at,
        expired_note=LATE_NOTE,
        continued_note=CONTINUED_NOTE,
    )
