"""Discord's answer text: deltas and failures (paging at 2,000 characters: tests/gateway/test_chat.py)."""

from __future__ import annotations

from endpoints.discord.rendering import EMPTY_ANSWER, MAX_CONTENT, apply_delta, failure_text


def test_the_limit_is_discords() -> None:
    assert MAX_CONTENT == 2000


def test_apply_delta() -> None:
    assert apply_delta("Hel", "text", "lo") == "Hello"
    assert apply_delta("Hello", "replace", "[removed]") == "[removed]"
    for kind in ("reasoning", "thought", "file", "progress", "ping"):
        assert apply_delta("Hello", kind, "ignored") == "Hello"


def test_failure_text() -> None:
    assert failure_text("", "boom") == "⚠️ Sorry, the answer failed: boom"
    assert failure_text("Partial answer  \n", "upstream\n  said   no") == (
        "Partial answer\n\n⚠️ Sorry, the answer failed: upstream said no"
    )
    assert failure_text("", "   ").endswith("the assistant did not answer")
    assert len(failure_text("", "x" * 5000)) < 400
    assert EMPTY_ANSWER.startswith("*(")
