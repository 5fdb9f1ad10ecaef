"""Table tests of the response_url budget (the last use kept for the final answer, pacing and 429
waits: the delivery engine's, tests/gateway/delivery/test_chat_engine.py)."""

from __future__ import annotations

import pytest

from endpoints.slack.budget import RESPONSE_URL_WINDOW, UseBudget


@pytest.mark.parametrize(
    ("used", "elapsed", "remaining"),
    [
        (0, 0.0, 5),
        (3, 60.0, 2),
        (5, 60.0, 0),
        (7, 60.0, 0),  # over-counted (a crashed attempt): never negative
        (0, RESPONSE_URL_WINDOW - 1, 5),
        (0, RESPONSE_URL_WINDOW, 0),  # 30 minutes on, the URL is dead
    ],
)
def test_use_budget(used: int, elapsed: float, remaining: int) -> None:
    assert UseBudget(1000.0, used=used).remaining(1000.0 + elapsed) == remaining
