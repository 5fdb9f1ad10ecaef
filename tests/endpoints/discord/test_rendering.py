"""Discord's rules for the chat-delivery engine (paging at 2,000 characters: tests/gateway/test_chat.py)."""

from __future__ import annotations

from endpoints.discord.rendering import EMPTY_ANSWER, MAX_CONTENT, chat_rules, failure_note
from gateway.exceptions import Overloaded, UpstreamError


def test_the_rules_are_discords() -> None:
    rules = chat_rules(0.5, expires_at=123.0)
    assert (rules.limit, rules.edit_interval, rules.expires_at) == (MAX_CONTENT, 0.5, 123.0)
    assert rules.empty_text == EMPTY_ANSWER and rules.failure_note is failure_note
    assert chat_rules(1.0).expires_at is None


def test_the_failure_note_is_one_short_readable_line() -> None:
    assert failure_note(UpstreamError("boom"), False) == "⚠️ Sorry, the answer failed: boom"
    assert failure_note(UpstreamError("upstream\n  said   no"), True) == "⚠️ Sorry, the answer failed: upstream said no"
    assert failure_note(Overloaded("   "), False).endswith("the assistant did not answer")
    assert len(failure_note(UpstreamError("x" * 5000), True)) < 400
