"""Discord's rules for the chat-delivery engine (paging at 2,000 characters: tests/gateway/test_chat.py)."""

from __future__ import annotations

from endpoints.discord.rendering import EMPTY_ANSWER, MAX_CONTENT, chat_rules, failure_note
from gateway.exceptions import Overloaded, UpstreamError


def test_the_rules_are_discords() -> None:
    rules = chat_rules(0.5, expires_at=123.0)
    assert (rules.limit, rules.edit_interval, rules.expires_at) == (MAX_CONTENT, 0.5, 123.0)
    assert rules.empty_text == EMPTY_ANSWER and rules.failure_note is failure_note
    assert chat_rules(1.0).expires_at is None


def test_the_failure_note_names_the_code_never_the_message() -> None:
    internal = UpstreamError("model at http://10.0.0.7:9997 refused", upstream_code="provider_not_initialize")
    assert failure_note(internal, False) == (
        "*⚠️ Sorry, no answer could be given (provider_not_initialize). Please try again in a moment.*"
    )
    assert failure_note(internal, True) == "*⚠️ The answer was cut short (provider_not_initialize). Please ask again.*"
    assert "10.0.0.7" not in failure_note(internal, True)
    assert "(overloaded)" in failure_note(Overloaded("   "), False)
