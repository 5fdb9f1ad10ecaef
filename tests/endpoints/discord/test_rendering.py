"""Paging answers at Discord's 2,000 characters, code fences, and answer text: pure functions."""

from __future__ import annotations

import re

import pytest

from endpoints.discord.rendering import (
    EMPTY_ANSWER,
    MAX_CONTENT,
    apply_delta,
    failure_text,
    open_fence,
    paginate,
)


def words(text: str) -> list[str]:
    return text.split()


def fences_balanced(page: str) -> bool:
    return page.count("```") % 2 == 0


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n"])
def test_nothing_to_show_gives_no_pages(text: str) -> None:
    assert paginate(text) == []


def test_a_short_text_is_one_page_trimmed() -> None:
    assert paginate("hello\n\n") == ["hello"]
    exactly = "x" * MAX_CONTENT
    assert paginate(exactly) == [exactly]


def test_long_prose_splits_between_words_and_loses_nothing() -> None:
    text = " ".join(f"word{i % 10}" for i in range(830))
    pages = paginate(text)
    assert len(pages) == 3
    assert all(len(p) <= MAX_CONTENT for p in pages)
    assert words(" ".join(pages)) == words(text)


def test_paragraph_breaks_are_preferred() -> None:
    first, second = "a " * 600, "b " * 600
    pages = paginate(f"{first}\n\n{second}")
    assert pages == [first.rstrip(), second.rstrip()]


def test_then_line_breaks() -> None:
    lines = "\n".join(f"line {i:04d} " + "x" * 40 for i in range(60))
    pages = paginate(lines)
    assert len(pages) == 2
    assert all(re.fullmatch(r"line \d{4} x{40}", line) for page in pages for line in page.split("\n"))
    assert "\n".join(pages) == lines


def test_a_break_in_the_first_half_is_not_taken() -> None:
    text = "intro\n\n" + "y " * 1500
    pages = paginate(text)
    assert len(pages[0]) > MAX_CONTENT // 2
    assert words(" ".join(pages)) == words(text)


def test_text_without_whitespace_is_cut_mid_word() -> None:
    text = "z" * 4500
    pages = paginate(text)
    assert [len(p) for p in pages] == [1996, 1996, 508]
    assert "".join(pages) == text


def test_leading_whitespace_makes_no_empty_page() -> None:
    assert paginate(" " * 3000 + "x") == ["x"]


def test_a_code_block_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(600))
    text = f"Here:\n\n```python\n{code}\n```\n\nDone."
    pages = paginate(text)
    assert len(pages) == 4
    assert all(len(p) <= MAX_CONTENT and fences_balanced(p) for p in pages)
    assert pages[0].startswith("Here:\n\n```python\n") and pages[0].endswith("\n```")
    assert all(p.startswith("```python\n") for p in pages[1:])
    assert pages[-1].endswith("```\n\nDone.")
    shown = "\n".join(p.removeprefix("```python\n").removesuffix("\n```") for p in pages)
    assert [line for line in shown.splitlines() if line.startswith("x")] == code.splitlines()


def test_a_block_is_not_split_when_prose_before_it_can_be() -> None:
    prose = "".join(f"prose line {i:03d}\n" for i in range(70))  # about 1,100 characters
    code = "```\n" + "code\n\n" * 200 + "```"
    pages = paginate(prose + code)
    assert "```" not in pages[0]  # cut at the line break before the block, not inside it
    assert pages[1].startswith("```\n")
    assert all(fences_balanced(p) for p in pages)


def test_a_paragraph_break_outside_code_beats_one_inside() -> None:
    prose = "p " * 550 + "\n\n" + "q " * 5
    code = "\n```\n" + "c\n\n" * 400 + "```"
    pages = paginate(prose + code)
    assert pages[0] == ("p " * 550).rstrip()


def test_a_limit_too_small_for_fences_is_refused() -> None:
    with pytest.raises(ValueError):
        paginate("x", limit=10)


def test_pages_of_a_growing_text_stay_put() -> None:
    """While an answer streams, every page but the last one never changes."""
    code = "\n".join(f"value_{i} = compute({i})" for i in range(150))
    full = ("Some words here. " * 60) + "\n\n```python\n" + code + "\n```\n\n" + ("More words. " * 200)
    previous: list[str] = []
    for end in range(0, len(full) + 1, 37):
        pages = paginate(full[:end])
        assert pages[: len(previous) - 1] == previous[:-1]
        previous = pages
    assert paginate(full)[: len(previous) - 1] == previous[:-1]


@pytest.mark.parametrize(
    ("text", "opener"),
    [
        ("no code", ""),
        ("```py\nx = 1\n```", ""),
        ("a\n```py\nx = 1", "```py\n"),
        ("a\n```py", "```\n"),  # the language line is not finished yet
        ("```" + "x" * 30 + "\nbody", "```\n"),  # too long for a language tag
        ("```print(1)\nmore", "```\n"),
        ("`` ` ```", "```\n"),
    ],
)
def test_open_fence(text: str, opener: str) -> None:
    assert open_fence(text) == opener


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
