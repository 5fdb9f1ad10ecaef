"""Pure text helpers for Discord answers: the limit of a message, and what an answer shows.

Discord refuses `content` over 2,000 characters ("Must be 2000 or fewer in length"), and bridges
that cut at `[:2000]` lose text (LangBot#1472): answers are paged at `MAX_CONTENT` by the
gateway's `split_text` (code fences closed and reopened with their language, earlier pages stable
while the answer grows).
"""

from __future__ import annotations

__all__ = ["EMPTY_ANSWER", "MAX_CONTENT", "apply_delta", "failure_text"]

MAX_CONTENT = 2000  # Discord's limit on a message's `content`
EMPTY_ANSWER = "*(The assistant returned an empty answer.)*"
_MAX_ERROR_CHARS = 300


def apply_delta(text: str, kind: str, delta: str) -> str:
    """The answer text after one streamed delta: `text` appends, `replace` replaces, others don't show."""
    if kind == "text":
        return text + delta
    if kind == "replace":
        return delta
    return text


def failure_text(shown: str, message: str) -> str:
    """What a failed answer leaves on screen: the text so far, then a short readable error line."""
    short = " ".join(message.split())[:_MAX_ERROR_CHARS] or "the assistant did not answer"
    note = f"⚠️ Sorry, the answer failed: {short}"
    return f"{shown.rstrip()}\n\n{note}" if shown.strip() else note
