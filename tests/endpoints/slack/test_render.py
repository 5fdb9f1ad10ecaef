"""Table tests of the pure text helpers: Markdown to mrkdwn, splitting mrkdwn, Slack markup to plain text.

The splitting itself is the gateway's (tests/gateway/test_chat.py); here, what Slack adds: cuts
never fall inside a `<…>` token or an `&…;` entity."""

from __future__ import annotations

import pytest

from endpoints.slack.render import (
    defuse_mentions,
    hide_reasoning,
    is_reset,
    protect_tokens,
    slack_to_plain,
    to_mrkdwn,
)
from gateway.plugin import cut_point, last_break


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("plain words", "plain words"),
        ("**bold** and __also bold__", "*bold* and *also bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~gone~~", "~gone~"),
        ("***both***", "*_both_*"),
        ("2 * 3 * 4", "2 * 3 * 4"),  # lone asterisks are not emphasis
        ("a**b", "a**b"),
        ("# Title", "*Title*"),
        ("### **Bold** title ##", "*Bold title*"),
        ("#", "#"),
        ("#hashtag", "#hashtag"),
        ("- one\n* two\n+ three", "• one\n• two\n• three"),
        ("  - nested **b**", "  • nested *b*"),
        ("1. first", "1. first"),
        ("> quoted *it*", ">quoted _it_"),
        ("[Dify](https://dify.ai)", "<https://dify.ai|Dify>"),
        ('[t](https://x.y/a "title")', "<https://x.y/a|t>"),
        ("![alt](https://x.y/i.png)", "<https://x.y/i.png|alt>"),
        ("[a|b](https://x.y/?q=1&r=2)", "<https://x.y/?q=1&amp;r=2|a|b>"),
        ("<https://dify.ai>", "<https://dify.ai>"),
        ("<mailto:a@b.c>", "<mailto:a@b.c>"),
        ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
        ("<!channel> ping <@U1>", "&lt;!channel&gt; ping &lt;@U1&gt;"),
        ("use `x < **y**` here", "use `x &lt; **y**` here"),
        ("inline ```a*b*c``` span", "inline ```a*b*c``` span"),
        ("```python\nif a < b:\n    **x**\n```", "```\nif a &lt; b:\n    **x**\n```"),
        ("```\nopen code\n\n# not a heading", "```\nopen code\n\n# not a heading"),
        ("before\n```\ncode\n```\n**after**", "before\n```\ncode\n```\n*after*"),
        ("```one line```", "```one line```"),
        ("keep \x01 out", "keep  out"),
        ("", ""),
    ],
)
def test_to_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


@pytest.mark.parametrize(
    ("text", "partial", "shown"),
    [
        ("<think>hmm</think>\n\nAnswer", False, "Answer"),
        ("A<think>x</think> B<think>y</think>C", False, "ABC"),
        ("Answer <think>still thinking", False, "Answer "),
        ("<think>only", True, ""),
        ("Answer <thi", True, "Answer "),
        ("Answer <", True, "Answer "),
        ("Answer <", False, "Answer <"),
        ("a < b", True, "a < b"),
        ("no reasoning", True, "no reasoning"),
    ],
)
def test_hide_reasoning(text: str, partial: bool, shown: str) -> None:
    assert hide_reasoning(text, partial=partial) == shown


@pytest.mark.parametrize(
    ("text", "room", "cut"),
    [
        ("xxxxxx <https://a.b/c|link> tail", 14, 7),  # never inside a link
        ("<https://a.b/cdefghijklmn|x>", 10, 10),  # a link longer than the room: cut anyway
        ("xxxxxxxxx&amp;yy", 11, 9),  # never inside an entity
        ("xxxxxxxxx&amp;", 12, 9),
        ("&amp;xxxxxxxxxxxxx", 3, 3),  # an entity at the start: can't move back that far
        ("xxxxx > yyyyyyyyyyy", 9, 7),  # a closed `>` is no token
    ],
)
def test_cut_point_keeps_tokens_whole(text: str, room: int, cut: int) -> None:
    assert cut_point(text, room, protect=protect_tokens) == cut


def test_last_break_keeps_tokens_whole() -> None:
    assert last_break("see <https://a.b/c|the docs> now", 25, 1) == 22  # inside the link
    assert last_break("see <https://a.b/c|the docs> now", 25, 1, protect=protect_tokens) == 4


@pytest.mark.parametrize(
    ("text", "bot", "plain"),
    [
        ("<@UBOT> hello", "UBOT", "hello"),
        ("hey <@UBOT|dify>, and <@U2>?", "UBOT", "hey , and <@U2>?"),
        ("<@UBOT> hello", None, "<@UBOT> hello"),
        ("see <https://a.b/c|the docs> or <https://x.y>", None, "see the docs (https://a.b/c) or https://x.y"),
        ("<https://a.b|https://a.b>", None, "https://a.b"),
        ("in <#C123|general> <!here> <!channel|channel>", None, "in #general @here @channel"),
        ("a &lt; b &amp;&amp; c &gt; d", None, "a < b && c > d"),
        ("  <@UBOT>  \n ", "UBOT", ""),
    ],
)
def test_slack_to_plain(text: str, bot: str | None, plain: str) -> None:
    assert slack_to_plain(text, bot) == plain


@pytest.mark.parametrize(
    ("text", "reset"),
    [("reset", True), (" Reset! ", True), ("RESET.", True), ("reset please", False), ("", False)],
)
def test_is_reset(text: str, reset: bool) -> None:
    assert is_reset(text) is reset


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi <!channel> and <!here|here>", "hi <\u200b!channel> and <\u200b!here|here>"),
        ("ask <@U123> in <#C9|general>", "ask <\u200b@U123> in <\u200b#C9|general>"),
        ("a < b and <https://x.test> stay", "a < b and <https://x.test> stay"),
        ("", ""),
    ],
)
def test_native_stream_text_never_pings(text: str, expected: str) -> None:
    assert defuse_mentions(text) == expected
