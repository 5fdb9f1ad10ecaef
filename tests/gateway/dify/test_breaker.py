"""CircuitBreaker on a FakeClock: closed -> open -> half-open -> closed/open, settled by tickets."""

from __future__ import annotations

import pytest

from gateway.clock import FakeClock
from gateway.dify.breaker import BreakerRegistry, CircuitBreaker
from gateway.exceptions import CircuitOpen, ConfigurationError


def state(breaker: CircuitBreaker) -> str:
    return breaker.state  # a plain str, so mypy doesn't narrow across mutations


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.acquire().failure()


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker("app", FakeClock(), failure_threshold=3, cool_down=30)
    fail(breaker, 2)
    breaker.acquire().success()  # resets the streak
    fail(breaker, 2)
    assert state(breaker) == "closed"
    fail(breaker)
    assert state(breaker) == "open"
    with pytest.raises(CircuitOpen) as caught:
        breaker.acquire()
    assert caught.value.message == "the Dify app 'app' is failing; paused for 30 s after repeated errors"
    assert caught.value.context["retry_after"] == 30


def test_half_open_allows_one_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("app", clock, failure_threshold=1, cool_down=10)
    fail(breaker)
    clock.advance(9.2)
    with pytest.raises(CircuitOpen, match="paused for 1 s"):
        breaker.acquire()
    clock.advance(0.8)
    assert state(breaker) == "half-open"
    trial = breaker.acquire()
    assert trial.trial
    with pytest.raises(CircuitOpen, match="paused for 1 s"):  # only one at a time
        breaker.acquire()
    trial.release()  # the trial was abandoned: the next caller may try
    breaker.acquire().success()
    assert state(breaker) == "closed"
    assert not breaker.acquire().trial


def test_calls_from_before_the_opening_cannot_let_a_second_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("app", clock, failure_threshold=2, cool_down=10)
    early_a, early_b = breaker.acquire(), breaker.acquire()  # in flight while the app goes down
    fail(breaker, 2)
    clock.advance(10)
    trial = breaker.acquire()
    early_a.release()  # an old call ends: it must not free the trial's place
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    early_b.success()  # nor close the breaker for the trial
    assert state(breaker) == "half-open"
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    trial.success()
    assert state(breaker) == "closed"


def test_a_ticket_is_settled_once() -> None:
    breaker = CircuitBreaker("app", FakeClock(), failure_threshold=2, cool_down=10)
    ticket = breaker.acquire()
    for _ in range(3):
        ticket.failure()
    assert state(breaker) == "closed"


def test_failed_trial_reopens_for_a_full_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("app", clock, failure_threshold=5, cool_down=10)
    fail(breaker, 5)
    clock.advance(10)
    fail(breaker)
    assert state(breaker) == "open"
    clock.advance(9.9)
    assert state(breaker) == "open"


def test_zero_cool_down_goes_straight_to_half_open() -> None:
    breaker = CircuitBreaker("app", FakeClock(), failure_threshold=1, cool_down=0)
    fail(breaker)
    assert state(breaker) == "half-open"


@pytest.mark.parametrize(("threshold", "cool_down"), [(0, 1.0), (1, -1.0)])
def test_invalid_settings(threshold: int, cool_down: float) -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker("app", FakeClock(), threshold, cool_down)
    with pytest.raises(ConfigurationError):
        BreakerRegistry(FakeClock(), threshold, cool_down)


def test_registry_keys_by_name_and_url() -> None:
    registry = BreakerRegistry(FakeClock(), failure_threshold=2, cool_down=5)
    first = registry.get("a", "https://x/v1")
    assert registry.get("a", "https://x/v1") is first
    assert registry.get("a", "https://y/v1") is not first
    assert registry.get("b", "https://x/v1") is not first
    assert (first.failure_threshold, first.cool_down) == (2, 5)
