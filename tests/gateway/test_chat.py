"""Table tests of the chat plugins' pure helpers: the edit throttle (on a fake clock, no sleeping),
payload fields, code fences, breaks and message splitting."""

from __future__ import annotations

import re

import pytest

from gateway.clock import FakeClock
from gateway.delivery.chat.text import (
    MIN_LIMIT,
    EditThrottle,
    as_text,
    cut_point,
    last_break,
    open_fence,
    split_text,
)

pytestmark = pytest.mark.anyio

DISCORD = 2000  # Discord's limit on a message's content


# -- EditThrottle ---------------------------------------------------------------------------------


def test_the_first_edit_goes_at_once_then_one_per_interval() -> None:
    clock = FakeClock()
    throttle = EditThrottle(1.0, clock)
    assert throttle.ready() and throttle.wait_time() == 0.0
    throttle.mark()
    assert not throttle.ready() and throttle.wait_time() == 1.0
    clock.advance(0.4)
    assert not throttle.ready() and throttle.wait_time() == pytest.approx(0.6)
    clock.advance(0.6)
    assert throttle.ready()
    clock.advance(5)
    assert throttle.wait_time() == 0.0  # never negative
    throttle.mark()
    assert throttle.wait_time() == pytest.approx(1.0)


def test_a_429_holds_edits_longer_but_never_shorter() -> None:
    clock = FakeClock()
    throttle = EditThrottle(1.0, clock)
    throttle.backoff(3.0)
    throttle.mark()  # the normal interval does not shorten the backoff
    assert throttle.wait_time() == 3.0
    throttle.backoff(0.5)
    assert throttle.wait_time() == 3.0
    throttle.backoff(-1)
    assert throttle.wait_time() == 3.0
    clock.advance(3.0)
    assert throttle.ready()


def test_a_placeholder_lends_its_slot_to_the_first_edit_and_the_next_write_pays_it_back() -> None:
    clock = FakeClock()
    throttle = EditThrottle(3.0, clock, lead=1.0)
    throttle.mark_placeholder()
    assert throttle.wait_time() == pytest.approx(1.0)  # the first words go 1 s after the placeholder
    clock.advance(1.0)
    throttle.mark()
    assert throttle.wait_time() == pytest.approx(5.0)  # then two intervals from the placeholder
    clock.advance(5.0)
    throttle.mark()
    assert throttle.wait_time() == pytest.approx(3.0)  # and one per interval after that


def test_a_late_first_edit_after_a_placeholder_waits_one_interval_as_usual() -> None:
    clock = FakeClock()
    throttle = EditThrottle(3.0, clock, lead=1.0)
    throttle.mark_placeholder()
    clock.advance(4.0)
    assert throttle.ready()
    throttle.mark()
    assert throttle.wait_time() == pytest.approx(3.0)


def test_the_lead_is_at_most_the_interval_and_a_429_still_holds_edits() -> None:
    clock = FakeClock()
    throttle = EditThrottle(0.5, clock, lead=1.0)
    assert throttle.lead == 0.5 and EditThrottle(3.0, clock).lead == 3.0  # no lead: the whole interval
    throttle = EditThrottle(3.0, clock, lead=1.0)
    throttle.mark_placeholder()
    throttle.backoff(4.0)
    assert throttle.wait_time() == pytest.approx(4.0)


async def test_wait_sleeps_on_the_clock_only_when_needed() -> None:
    clock = FakeClock()
    throttle = EditThrottle(2.0, clock)
    await throttle.wait()
    assert clock.monotonic() == 0.0
    throttle.mark()
    await throttle.wait()
    assert clock.monotonic() == 2.0 and throttle.ready()


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        EditThrottle(-1, FakeClock())
    assert EditThrottle(0, FakeClock()).ready()


# -- as_text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [("U1", "U1"), ("", None), (1234, "1234"), (0, "0"), (True, None), (None, None), (1.5, None), (["U1"], None)],
)
def test_as_text(value: object, text: str | None) -> None:
    assert as_text(value) == text


# -- code fences ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "opener"),
    [
        ("", ""),
        ("no code", ""),
        ("```\ncode", "```\n"),
        ("```py\ncode\n```", ""),
        ("```py\nx = 1\n```", ""),
        ("```a``` inline", ""),
        ("text\n  ```\nindented fence", "```\n"),
        ("a\n```py\nx = 1", "```py\n"),
        ("a\n```py", "```\n"),  # the language line is not finished yet
        ("```" + "x" * 30 + "\nbody", "```\n"),  # too long for a language tag
        ("```print(1)\nmore", "```\n"),
        ("`` ` ```", "```\n"),
    ],
)
def test_open_fence(text: str, opener: str) -> None:
    assert open_fence(text) == opener


# -- breaks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "room", "cut"),
    [
        ("short", 10, 5),
        ("aaaaaaa\n\nbb\ncc dd", 12, 7),  # a paragraph break wins
        ("aaaaaaa\nbb. cc dddd", 12, 7),  # then a line break
        ("aaaaaaa. bb cc", 12, 8),  # then a sentence end (its full stop stays)
        ("aaaa bbbb cccc", 10, 9),  # then the last space
        ("aaaa bbbbb cccc", 10, 10),  # a space right at the limit: the piece fills the room
        ("aa\n\nbbbbbbbbbbbb", 10, 10),  # a break in the first half is too early: hard cut
        ("a bcdefghijklmnop", 10, 10),  # a space too early: hard cut
        ("abcdefghijklmnop", 10, 10),
    ],
)
def test_cut_point(text: str, room: int, cut: int) -> None:
    assert cut_point(text, room) == cut


@pytest.mark.parametrize(
    ("text", "room", "floor", "found"),
    [
        (" tailofastream", 10, 0, 0),  # a streamed message may end right where it is
        (" tailofastream", 10, 1, None),
        (" tail of a stream", 10, 1, 8),  # the separator itself must fit in the room
        ("nobreakshere", 5, 0, None),
        ("line one\nline two", 12, 0, 8),
    ],
)
def test_last_break(text: str, room: int, floor: int, found: int | None) -> None:
    assert last_break(text, room, floor) == found


def _outside_brackets(text: str, cut: int, floor: int) -> int:
    """A `protect` keeping `<…>` tokens whole that (wrongly) ignores the floor."""
    start = text.rfind("<", 0, cut)
    return start if start > text.rfind(">", 0, cut) else cut


@pytest.mark.parametrize(
    ("text", "room", "cut"),
    [
        ("aaaaaa<bbbbbbbb>", 10, 6),  # a hard cut moved back to the start of the token
        ("aaaaaabbbbbbbbbb", 10, 10),  # no token: unchanged
        ("aa<bbbbbbbbbbbbb>", 10, 5),  # the token starts before the floor: never below it
        ("aaaaa<b cd>eeeee", 10, 5),  # breaks are protected too
    ],
)
def test_protect_moves_cuts_back_but_never_below_the_floor(text: str, room: int, cut: int) -> None:
    assert cut_point(text, room, protect=_outside_brackets) == cut


# -- split_text -----------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return text.split()


def fences_balanced(part: str) -> bool:
    return part.count("```") % 2 == 0


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n", " \n "])
def test_nothing_to_show_gives_no_parts(text: str) -> None:
    assert split_text(text, DISCORD) == []


def test_a_short_text_is_one_part_trimmed() -> None:
    assert split_text("hello\n\n", DISCORD) == ["hello"]
    assert split_text("  hello  ", 100) == ["hello"]
    exactly = "x" * DISCORD
    assert split_text(exactly, DISCORD) == [exactly]


def test_a_limit_too_small_for_fences_is_refused() -> None:
    with pytest.raises(ValueError):
        split_text("x", MIN_LIMIT - 1)
    with pytest.raises(ValueError):
        split_text("x", 10)
    assert split_text("x", MIN_LIMIT) == ["x"]


def test_long_prose_splits_between_words_and_loses_nothing() -> None:
    text = " ".join(f"word{i % 10}" for i in range(830))
    parts = split_text(text, DISCORD)
    assert len(parts) == 3
    assert all(len(p) <= DISCORD for p in parts)
    assert words(" ".join(parts)) == words(text)


def test_paragraph_breaks_are_preferred() -> None:
    first, second = "a " * 600, "b " * 600
    assert split_text(f"{first}\n\n{second}", DISCORD) == [first.rstrip(), second.rstrip()]


def test_at_paragraphs_without_losing_words() -> None:
    paragraphs = [" ".join(f"w{p}{i}" for i in range(20)) for p in range(10)]
    text = "\n\n".join(paragraphs)
    parts = split_text(text, 200)
    assert all(len(part) <= 200 for part in parts)
    assert all(part == part.strip() for part in parts)
    assert " ".join(parts).split() == text.split()
    assert all(part in paragraphs or "\n\n" in part or part.count(" ") for part in parts)


def test_then_line_breaks() -> None:
    lines = "\n".join(f"line {i:04d} " + "x" * 40 for i in range(60))
    parts = split_text(lines, DISCORD)
    assert len(parts) == 2
    assert all(re.fullmatch(r"line \d{4} x{40}", line) for part in parts for line in part.split("\n"))
    assert "\n".join(parts) == lines


def test_then_sentences() -> None:
    text = "A sentence that ends here. " * 10
    parts = split_text(text, 100)
    assert all(part.endswith(".") for part in parts)
    assert " ".join(parts) == text.strip()


def test_a_break_in_the_first_half_is_not_taken() -> None:
    text = "intro\n\n" + "y " * 1500
    parts = split_text(text, DISCORD)
    assert len(parts[0]) > DISCORD // 2
    assert words(" ".join(parts)) == words(text)


@pytest.mark.parametrize(
    ("text", "limit", "sizes"),
    [("z" * 4500, DISCORD, [1996, 1996, 508]), ("x" * 250, 100, [96, 96, 58])],
)
def test_text_without_whitespace_is_cut_mid_word(text: str, limit: int, sizes: list[int]) -> None:
    parts = split_text(text, limit)
    assert [len(p) for p in parts] == sizes  # room is kept for a closing fence
    assert "".join(parts) == text


def test_leading_whitespace_makes_no_empty_part() -> None:
    assert split_text(" " * 3000 + "x", DISCORD) == ["x"]


def test_a_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(600))
    text = f"Here:\n\n```python\n{code}\n```\n\nDone."
    parts = split_text(text, DISCORD)
    assert len(parts) == 4
    assert all(len(p) <= DISCORD and fences_balanced(p) for p in parts)
    assert parts[0].startswith("Here:\n\n```python\n") and parts[0].endswith("\n```")
    assert all(p.startswith("```python\n") for p in parts[1:])
    assert parts[-1].endswith("```\n\nDone.")
    shown = "\n".join(p.removeprefix("```python\n").removesuffix("\n```") for p in parts)
    assert [line for line in shown.splitlines() if line.startswith("x")] == code.splitlines()


def test_a_code_block_split_rebuilds_exactly() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(60))
    text = f"Here:\n```\n{code}\n```\nDone."
    parts = split_text(text, 200)
    assert len(parts) > 2
    for part in parts:
        assert len(part) <= 200
        assert not open_fence(part), part  # each part renders on its own
    assert parts[1].startswith("```\n")
    assert "\n".join(parts).replace("\n```\n```\n", "\n") == text


def test_indentation_in_a_reopened_block_is_kept() -> None:
    code = "\n".join(f"    indented_{i} = {i}" for i in range(20))
    parts = split_text(f"```\n{code}\n```", 200)
    assert all(p.startswith("```\n    indented_") for p in parts[1:])


def test_a_block_still_open_at_the_end_is_closed() -> None:
    assert split_text("Look:\n```py\nx = 1\n", DISCORD) == ["Look:\n```py\nx = 1\n```"]


def test_a_block_is_not_split_when_prose_before_it_can_be() -> None:
    prose = "".join(f"prose line {i:03d}\n" for i in range(70))  # about 1,100 characters
    code = "```\n" + "code\n\n" * 200 + "```"
    parts = split_text(prose + code, DISCORD)
    assert "```" not in parts[0]  # cut at the line break before the block, not inside it
    assert parts[1].startswith("```\n")
    assert all(fences_balanced(p) for p in parts)


def test_a_paragraph_break_outside_code_beats_one_inside() -> None:
    prose = "p " * 550 + "\n\n" + "q " * 5
    code = "\n```\n" + "c\n\n" * 400 + "```"
    assert split_text(prose + code, DISCORD)[0] == ("p " * 550).rstrip()


def test_a_part_of_nothing_but_a_reopened_fence_is_not_sent() -> None:
    text = "```\n" + "a" * 150 + "\n" + " " * 300 + "\n" + "b" * 50 + "\n```"
    parts = split_text(text, 200)
    assert len(parts) == 2
    assert parts[0] == "```\n" + "a" * 150 + "\n```"
    assert parts[1].startswith("```\n ") and parts[1].endswith("\n" + "b" * 50 + "\n```")


def test_parts_of_a_growing_text_stay_put() -> None:
    """While an answer streams, every part but the last one never changes."""
    code = "\n".join(f"value_{i} = compute({i})" for i in range(150))
    full = ("Some words here. " * 60) + "\n\n```python\n" + code + "\n```\n\n" + ("More words. " * 200)
    previous: list[str] = []
    for end in range(0, len(full) + 1, 37):
        parts = split_text(full[:end], DISCORD)
        assert parts[: len(previous) - 1] == previous[:-1]
        previous = parts
    assert split_text(full, DISCORD)[: len(previous) - 1] == previous[:-1]


def test_protect_keeps_tokens_whole_across_parts() -> None:
    text = ("word " * 15 + "<a b c d e f g> ") * 6
    parts = split_text(text, 100, protect=_outside_brackets)
    assert len(parts) > 3
    assert all(len(p) <= 100 and p.count("<") == p.count(">") for p in parts)
    assert words(" ".join(parts)) == words(text)
