"""RetryPolicy: full-jitter backoff and the retry decision (pure)."""

from __future__ import annotations

import random

import pytest

from gateway.dify.retry import RetryPolicy
from gateway.exceptions import ConfigurationError, UpstreamError


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (99, 5.0)]
)
def test_ceiling_doubles_up_to_max(attempt: int, ceiling: float) -> None:
    assert RetryPolicy(base_delay=0.5, max_delay=5.0).ceiling(attempt) == ceiling


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert RetryPolicy(max_delay=8.0).ceiling(10**6) == 8.0


def test_backoff_is_full_jitter() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0)
    assert policy.backoff(3, rand=lambda: 0.0) == 0.0
    assert policy.backoff(3, rand=lambda: 0.5) == 2.0
    rng = random.Random(1)
    samples = [policy.backoff(4, rng.random) for _ in range(1000)]
    assert all(0.0 <= s < 8.0 for s in samples)
    assert min(samples) < 1.0 and max(samples) > 7.0  # spread over the whole window


def test_should_retry() -> None:
    policy = RetryPolicy(max_attempts=3)
    retryable, final = UpstreamError("x", retryable=True), UpstreamError("x")
    assert policy.should_retry(1, retryable) and policy.should_retry(2, retryable)
    assert not policy.should_retry(3, retryable)
    assert not policy.should_retry(1, final)
    assert not RetryPolicy(max_attempts=1).should_retry(1, retryable)


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"max_delay": -0.1}])
def test_invalid_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
