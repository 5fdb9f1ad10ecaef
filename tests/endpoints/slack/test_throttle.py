"""Table tests of the response_url budget (the edit throttle and 429 waits: tests/gateway/test_chat.py)."""

from __future__ import annotations

import pytest

from endpoints.slack.throttle import RESPONSE_URL_WINDOW, UseBudget


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
