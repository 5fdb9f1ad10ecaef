"""The callback retry schedule and Retry-After parsing: pure, table-driven, every branch."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest

from gateway.delivery.retry import (
    CALLBACK_SCHEDULE,
    JITTER,
    MAX_RETRY_AFTER_S,
    next_callback_delay,
    parse_retry_after,
)

NOW = 1_700_000_000.0


# Svix's schedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.6 hours in all).
@pytest.mark.parametrize(
    ("attempts_made", "rand", "expected"),
    [
        (0, 0.5, 0.0),  # the first attempt goes at once
        (0, 0.0, 0.0),  # no jitter on a zero delay
        (0, 0.999, 0.0),
        (1, 0.5, 5.0),
        (1, 0.0, 4.5),  # -10 %
        (2, 0.5, 300.0),
        (2, 0.25, 285.0),
        (2, 0.75, 315.0),
        (3, 0.5, 1800.0),
        (4, 0.5, 7200.0),
        (5, 0.5, 18000.0),
        (6, 0.5, 36000.0),
        (7, 0.0, 32400.0),
        (7, 0.5, 36000.0),
    ],
)
def test_scheduled_delay_with_jitter(attempts_made: int, rand: float, expected: float) -> None:
    delay = next_callback_delay(attempts_made, rand=rand)
    assert delay == pytest.approx(expected)


@pytest.mark.parametrize("attempts_made", range(len(CALLBACK_SCHEDULE)))
@pytest.mark.parametrize("rand", [0.0, 0.1, 0.5, 0.9, math.nextafter(1.0, 0.0)])
def test_jitter_stays_within_ten_percent(attempts_made: int, rand: float) -> None:
    base = CALLBACK_SCHEDULE[attempts_made]
    delay = next_callback_delay(attempts_made, rand=rand)
    assert delay is not None
    assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)


@pytest.mark.parametrize("attempts_made", [8, 9, 100])
def test_exhausted_after_eight_attempts(attempts_made: int) -> None:
    assert next_callback_delay(attempts_made, rand=0.5) is None
    # A receiver's Retry-After can't revive a dead message.
    assert next_callback_delay(attempts_made, rand=0.5, retry_after=1.0) is None


@pytest.mark.parametrize(
    ("attempts_made", "retry_after", "expected"),
    [
        (1, 7.0, 7.0),  # longer than the scheduled 5 s: honoured exactly, no jitter below it
        (1, 3.0, 5.0),  # shorter than the schedule: the schedule wins
        (2, 7.0, 300.0),
        (1, 0.0, 5.0),
        (1, -10.0, 5.0),
        (1, 200_000.0, MAX_RETRY_AFTER_S),  # capped at 24 h
        (1, math.inf, MAX_RETRY_AFTER_S),
        (1, math.nan, 5.0),  # ignored
        (7, 50_000.0, 50_000.0),
        (7, 10.0, 36000.0),
        (0, 7.0, 7.0),
    ],
)
def test_retry_after_is_a_capped_lower_bound(attempts_made: int, retry_after: float, expected: float) -> None:
    assert next_callback_delay(attempts_made, rand=0.5, retry_after=retry_after) == pytest.approx(expected)


def test_custom_schedule_and_cap() -> None:
    schedule = (0.0, 10.0, 100_000.0)
    assert next_callback_delay(1, rand=0.5, schedule=schedule) == pytest.approx(10.0)
    assert next_callback_delay(3, rand=0.5, schedule=schedule) is None
    # The cap limits only what the receiver asks for, not our own (longer) schedule.
    assert next_callback_delay(2, rand=0.5, schedule=schedule, retry_after=500.0, max_retry_after=60.0) == 100_000.0
    assert next_callback_delay(1, rand=0.5, schedule=schedule, retry_after=500.0, max_retry_after=60.0) == 60.0
    assert next_callback_delay(0, rand=0.5, schedule=()) is None


@pytest.mark.parametrize(
    ("attempts_made", "rand"),
    [(-1, 0.5), (1, -0.1), (1, 1.0), (1, 1.5), (1, math.nan)],
)
def test_bad_arguments_raise(attempts_made: int, rand: float) -> None:
    with pytest.raises(ValueError):
        next_callback_delay(attempts_made, rand=rand)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("120", 120.0),
        ("00012", 12.0),
        ("9999999999", 9_999_999_999.0),  # 10 digits: taken as is (the delay function caps it)
        ("99999999999", float(2**31)),  # longer: RFC 9111's 2^31
        ("1" * 64, float(2**31)),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW + 3600, usegmt=True), 3600.0),
        (formatdate(NOW - 3600, usegmt=True), 0.0),  # past: go now, never negative
        (formatdate(NOW, usegmt=True), 0.0),
        ("Tue, 14 Nov 2023 22:14:20 -0000", 60.0),  # "zone unknown" is read as GMT
        ("Tue, 14 Nov 2023 23:14:20 +0100", 60.0),
        ("Tuesday, 14-Nov-23 22:14:20 GMT", 60.0),  # the obsolete RFC 850 form
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "-5",
        "+5",
        "7.5",
        "1e3",
        "\u0661\u0662",  # Arabic-Indic digits: not ASCII
        "\uff17",  # full-width 7
        "soon",
        "7 seconds",
        "Wed, 32 Oct 2015 07:28:00 GMT",  # no such day
        "Wed, 21 Oct 99999 07:28:00 GMT",  # year out of range
        "1" * 65,  # longer than any real header: refused before any work
        "1" * 5000,
        "x" * 100,
    ],
)
def test_parse_retry_after_junk_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None
