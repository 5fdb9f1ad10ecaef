"""Table tests of the pure text helpers: Markdown to mrkdwn, splitting, Slack markup to plain text."""

from __future__ import annotations

import pytest

from endpoints.slack.render import (
    MIN_LIMIT,
    cut_point,
    fence_open,
    hide_reasoning,
    is_reset,
    last_break,
    slack_to_plain,
    split_message,
    to_mrkdwn,
)


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
    ("text", "is_open"),
    [
        ("", False),
        ("```\ncode", True),
        ("```py\ncode\n```", False),
        ("```a``` inline", False),
        ("text\n  ```\nindented fence", True),
    ],
)
def test_fence_open(text: str, is_open: bool) -> None:
    assert fence_open(text) is is_open


@pytest.mark.parametrize(
    ("text", "room", "cut"),
    [
        ("short", 10, 5),
        ("aaaaaaa\n\nbb\ncc dd", 12, 7),  # a paragraph break wins
        ("aaaaaaa\nbb. cc dddd", 12, 7),  # then a line break
        ("aaaaaaa. bb cc", 12, 8),  # then a sentence end (its full stop stays)
        ("aaaa bbbb cccc", 10, 9),  # then the last space
        ("aa\n\nbbbbbbbbbbbb", 10, 10),  # a break in the first half is too early: hard cut
        ("a bcdefghijklmnop", 10, 10),  # a space too early: hard cut
        ("abcdefghijklmnop", 10, 10),
        ("xxxxxx <https://a.b/c|link> tail", 14, 7),  # never inside a link
        ("<https://a.b/cdefghijklmn|x>", 10, 10),  # a link longer than the room: cut anyway
        ("xxxxxxxxx&amp;yy", 11, 9),  # never inside an entity
        ("xxxxxxxxx&amp;", 12, 9),
        ("&amp;xxxxxxxxxxxxx", 3, 3),  # an entity at the start: can't move back that far
        ("xxxxx > yyyyyyyyyyy", 9, 7),  # a closed `>` is no token
    ],
)
def test_cut_point(text: str, room: int, cut: int) -> None:
    assert cut_point(text, room) == cut


@pytest.mark.parametrize(
    ("text", "room", "floor", "found"),
    [
        (" tailofastream", 10, 0, 0),  # a streamed message may end right where it is
        (" tailofastream", 10, 1, None),
        (" tail of a stream", 10, 1, 8),
        ("nobreakshere", 5, 0, None),
        ("line one\nline two", 12, 0, 8),
    ],
)
def test_last_break(text: str, room: int, floor: int, found: int | None) -> None:
    assert last_break(text, room, floor) == found


def test_split_message_short_and_blank() -> None:
    assert split_message("  hello  ", 100) == ["hello"]
    assert split_message(" \n ", 100) == []
    with pytest.raises(ValueError):
        split_message("x", MIN_LIMIT - 1)


def test_split_message_at_paragraphs_without_losing_words() -> None:
    paragraphs = [" ".join(f"w{p}{i}" for i in range(20)) for p in range(10)]
    text = "\n\n".join(paragraphs)
    parts = split_message(text, 200)
    assert all(len(part) <= 200 for part in parts)
    assert all(part == part.strip() for part in parts)
    assert " ".join(parts).split() == text.split()
    assert all(part in paragraphs or "\n\n" in part or part.count(" ") for part in parts)


def test_split_message_closes_and_reopens_code_blocks() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(60))
    text = f"Here:\n```\n{code}\n```\nDone."
    parts = split_message(text, 200)
    assert len(parts) > 2
    for part in parts:
        assert len(part) <= 200
        assert not fence_open(part), part  # each part renders on its own
    assert parts[1].startswith("```\n")
    rebuilt = "\n".join(parts).replace("\n```\n```\n", "\n")
    assert rebuilt == text


def test_split_message_hard_cuts_one_long_word() -> None:
    parts = split_message("x" * 250, 100)
    assert parts == ["x" * 96, "x" * 96, "x" * 58]


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
