"""The callback retry schedule: pure, table-driven, every branch."""

from __future__ import annotations

import math

import pytest

from gateway.delivery.retry import (
    CALLBACK_SCHEDULE,
    JITTER,
    MAX_RETRY_AFTER_S,
    next_callback_delay,
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
