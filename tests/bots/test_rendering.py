"""The bot's pure helpers: when to answer, the prompt, thread names, reset words."""

from __future__ import annotations

import pytest

from bots.rendering import Trigger, is_reset, strip_mentions, thread_name, trigger_for
from endpoints.discord.rendering import MAX_CONTENT
from gateway.plugin import split_text


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"author_is_bot": True, "is_dm": True, "mentioned": True, "in_own_thread": True}, None),
        ({"author_is_bot": False, "is_dm": True, "mentioned": False, "in_own_thread": False}, Trigger.DIRECT),
        ({"author_is_bot": False, "is_dm": False, "mentioned": True, "in_own_thread": True}, Trigger.MENTION),
        ({"author_is_bot": False, "is_dm": False, "mentioned": False, "in_own_thread": True}, Trigger.THREAD),
        ({"author_is_bot": False, "is_dm": False, "mentioned": False, "in_own_thread": False}, None),
    ],
)
def test_trigger_for(flags: dict[str, bool], expected: Trigger | None) -> None:
    assert trigger_for(**flags) is expected


def test_strip_mentions_removes_both_forms_of_the_bot_only() -> None:
    assert strip_mentions("<@99> hello <@!99> there <@5>", 99) == "hello   there <@5>"
    assert strip_mentions("  <@99>  ", 99) == ""
    assert strip_mentions("<@999> hi", 99) == "<@999> hi"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("reset", True), (" /Reset ", True), ("!reset", True), ("//reset", False), ("reset please", False), ("", False)],
)
def test_is_reset(prompt: str, expected: bool) -> None:
    assert is_reset(prompt, "reset") is expected


def test_thread_name() -> None:
    assert thread_name("  what is\n up? ") == "what is up?"
    assert thread_name(" \n ") == "Conversation"
    long = thread_name("word " * 40)
    assert len(long) <= 90 and long.endswith("word…")
    unbroken = thread_name("x" * 200)
    assert len(unbroken) == 90 and unbroken.endswith("…")


def test_paging_is_the_endpoints() -> None:
    # An unbroken run one over Discord's 2000-character limit: a full page (room left for the
    # continuation mark) and the rest.
    assert [len(p) for p in split_text("y" * 2001, MAX_CONTENT)] == [1996, 5]
