"""CircuitBreaker on a FakeClock: closed -> open -> half-open -> closed/open."""

from __future__ import annotations

import pytest

from gateway.clock import FakeClock
from gateway.dify.breaker import BreakerRegistry, CircuitBreaker
from gateway.exceptions import CircuitOpen, ConfigurationError


def state(breaker: CircuitBreaker) -> str:
    return breaker.state  # a plain str, so mypy doesn't narrow across mutations


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker("app", FakeClock(), failure_threshold=3, cool_down=30)
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure()
    breaker.acquire()
    breaker.record_success()  # resets the streak
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure()
    assert state(breaker) == "closed"
    breaker.acquire()
    breaker.record_failure()
    assert state(breaker) == "open"
    with pytest.raises(CircuitOpen) as caught:
        breaker.acquire()
    assert caught.value.message == "the Dify app 'app' is failing; paused for 30 s after repeated errors"
    assert caught.value.context["retry_after"] == 30


def test_half_open_allows_one_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("app", clock, failure_threshold=1, cool_down=10)
    breaker.acquire()
    breaker.record_failure()
    clock.advance(9.2)
    with pytest.raises(CircuitOpen, match="paused for 1 s"):
        breaker.acquire()
    clock.advance(0.8)
    assert state(breaker) == "half-open"
    breaker.acquire()  # the probe
    with pytest.raises(CircuitOpen, match="paused for 1 s"):  # only one at a time
        breaker.acquire()
    breaker.release()  # the probe was abandoned: the next caller may probe
    breaker.acquire()
    breaker.record_success()
    assert state(breaker) == "closed"
    breaker.acquire()


def test_failed_probe_reopens_for_a_full_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("app", clock, failure_threshold=5, cool_down=10)
    for _ in range(5):
        breaker.record_failure()
    clock.advance(10)
    breaker.acquire()
    breaker.record_failure()
    assert state(breaker) == "open"
    clock.advance(9.9)
    assert state(breaker) == "open"


def test_zero_cool_down_goes_straight_to_half_open() -> None:
    breaker = CircuitBreaker("app", FakeClock(), failure_threshold=1, cool_down=0)
    breaker.record_failure()
    assert state(breaker) == "half-open"


@pytest.mark.parametrize(("threshold", "cool_down"), [(0, 1.0), (1, -1.0)])
def test_invalid_settings(threshold: int, cool_down: float) -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker("app", FakeClock(), threshold, cool_down)


def test_registry_keys_by_name_and_url() -> None:
    registry = BreakerRegistry(FakeClock(), failure_threshold=2, cool_down=5)
    first = registry.get("a", "https://x/v1")
    assert registry.get("a", "https://x/v1") is first
    assert registry.get("a", "https://y/v1") is not first
    assert registry.get("b", "https://x/v1") is not first
    assert (first.failure_threshold, first.cool_down) == (2, 5)
