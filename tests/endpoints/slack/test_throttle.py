"""Table tests of the pacing helpers, on a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from endpoints.slack.throttle import RESPONSE_URL_WINDOW, EditThrottle, UseBudget, retry_after_seconds
from gateway.clock import FakeClock


def test_edit_throttle_spaces_edits() -> None:
    clock = FakeClock()
    throttle = EditThrottle(1.0, clock.monotonic)
    assert throttle.ready() and throttle.wait_time() == 0.0  # the first edit goes at once
    throttle.record()
    assert not throttle.ready()
    assert throttle.wait_time() == pytest.approx(1.0)
    clock.advance(0.4)
    assert throttle.wait_time() == pytest.approx(0.6)
    clock.advance(0.6)
    assert throttle.ready()
    clock.advance(5)
    assert throttle.wait_time() == 0.0  # never negative
    throttle.record()
    assert throttle.wait_time() == pytest.approx(1.0)


def test_edit_throttle_rejects_a_negative_interval() -> None:
    with pytest.raises(ValueError):
        EditThrottle(-1, FakeClock().monotonic)


@pytest.mark.parametrize(
    ("used", "elapsed", "remaining", "spare_keeping_one"),
    [
        (0, 0.0, 5, True),
        (3, 60.0, 2, True),
        (4, 60.0, 1, False),  # the last use is kept for the final answer
        (5, 60.0, 0, False),
        (7, 60.0, 0, False),  # over-counted (a crashed attempt): never negative
        (0, RESPONSE_URL_WINDOW - 1, 5, True),
        (0, RESPONSE_URL_WINDOW, 0, False),  # 30 minutes on, the URL is dead
    ],
)
def test_use_budget(used: int, elapsed: float, remaining: int, spare_keeping_one: bool) -> None:
    budget = UseBudget(1000.0, used=used)
    assert budget.remaining(1000.0 + elapsed) == remaining
    assert budget.can_spare(1000.0 + elapsed, keep=1) is spare_keeping_one


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 1.0),
        ("3", 3.0),
        (" 2 ", 2.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("3600", 60.0),  # capped: a job retries later instead of holding a worker
        ("soon", 1.0),
        ("", 1.0),
        ("-5", 1.0),
        ("nan", 1.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1.0),
    ],
)
def test_retry_after_seconds(value: str | None, seconds: float) -> None:
    assert retry_after_seconds(value) == seconds
