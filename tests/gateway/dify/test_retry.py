"""RetryPolicy on tenacity: full-jitter backoff on the injected clock, and which errors are retried."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from tenacity import AsyncRetrying, RetryCallState

from gateway.clock import FakeClock
from gateway.dify.retry import RetryPolicy
from gateway.exceptions import ConfigurationError, UpstreamError

pytestmark = pytest.mark.anyio

FAR = float("inf")  # a deadline that never stops a retry


class Failing:
    """An attempt that raises `errors` in turn, then returns "ok"; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def retryable(n: int) -> list[UpstreamError]:
    return [UpstreamError(f"down {i}", retryable=True) for i in range(1, n + 1)]


async def waits(policy: RetryPolicy, rand: Callable[[], float], failures: int) -> list[float]:
    """The waits `policy` takes between `failures` failed attempts and a success, on a fake clock."""
    clock, taken = FakeClock(), []

    async def sleep(seconds: float) -> None:
        taken.append(seconds)
        await clock.sleep(seconds)

    assert await policy.call(Failing(*retryable(failures)), sleep=sleep, rand=rand, deadline=FAR) == "ok"
    assert clock.monotonic() == pytest.approx(sum(taken))  # all the waiting happened on the clock
    return taken


async def test_the_window_doubles_up_to_max_delay() -> None:
    policy = RetryPolicy(max_attempts=7, base_delay=0.5, max_delay=5.0)
    assert await waits(policy, lambda: 1.0, failures=6) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


async def test_backoff_is_full_jitter() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=100.0)
    assert await waits(policy, lambda: 0.0, failures=3) == [0.0, 0.0, 0.0]
    assert await waits(policy, lambda: 0.5, failures=3) == [0.5, 1.0, 2.0]
    rng = random.Random(1)
    window = RetryPolicy(base_delay=1.0, max_delay=100.0).wait(rng.random)
    state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = 4
    samples = [window(state) for _ in range(1000)]
    assert all(0.0 <= s < 8.0 for s in samples)
    assert min(samples) < 1.0 and max(samples) > 7.0  # spread over the whole window


def test_huge_attempt_numbers_do_not_overflow() -> None:
    state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = 10**6
    assert RetryPolicy(max_delay=8.0).wait(lambda: 1.0)(state) == 8.0


async def test_the_injected_clock_does_the_waiting() -> None:
    """A retry schedule of minutes finishes at once: nothing but the clock's `sleep` waits."""
    clock, attempt = FakeClock(), Failing(*retryable(2))
    policy = RetryPolicy(max_attempts=3, base_delay=60.0, max_delay=600.0)
    with anyio.fail_after(5):
        assert await policy.call(attempt, sleep=clock.sleep, rand=lambda: 0.5, deadline=FAR) == "ok"
    assert attempt.calls == 3
    assert clock.monotonic() == 30.0 + 60.0


async def test_retryable_errors_are_retried_until_the_attempts_run_out() -> None:
    errors = retryable(3)
    attempt = Failing(*errors)
    with pytest.raises(UpstreamError) as caught:
        await RetryPolicy(max_attempts=3).call(attempt, sleep=FakeClock().sleep, rand=lambda: 0.5, deadline=FAR)
    assert caught.value is errors[-1]  # the last error itself, not a tenacity wrapper
    assert attempt.calls == 3


@pytest.mark.parametrize(
    ("policy", "error"),
    [
        (RetryPolicy(max_attempts=3), UpstreamError("bad request")),  # not retryable
        (RetryPolicy(max_attempts=3), ValueError("a bug")),  # not an upstream error at all
        (RetryPolicy(max_attempts=1), UpstreamError("down", retryable=True)),  # one attempt only
    ],
)
async def test_other_errors_are_raised_at_once(policy: RetryPolicy, error: BaseException) -> None:
    attempt, clock = Failing(error), FakeClock()
    with pytest.raises(type(error)) as caught:
        await policy.call(attempt, sleep=clock.sleep, rand=lambda: 0.5, deadline=FAR)
    assert caught.value is error
    assert (attempt.calls, clock.monotonic()) == (1, 0.0)


async def test_a_wait_that_would_pass_the_deadline_is_not_taken() -> None:
    attempt, clock = Failing(*retryable(2)), FakeClock()
    policy = RetryPolicy(max_attempts=5, base_delay=10.0, max_delay=10.0)
    with pytest.raises(UpstreamError, match="down 1"):
        await policy.call(attempt, sleep=clock.sleep, rand=lambda: 0.5, deadline=anyio.current_time() + 4.0)
    assert (attempt.calls, clock.monotonic()) == (1, 0.0)


async def test_each_retry_is_reported_before_its_wait() -> None:
    seen: list[tuple[int, str, float]] = []
    errors = retryable(2)
    await RetryPolicy(max_attempts=3, base_delay=1.0).call(
        Failing(*errors),
        sleep=FakeClock().sleep,
        rand=lambda: 0.5,
        deadline=FAR,
        on_retry=lambda number, error, delay: seen.append((number, error.message, delay)),
    )
    assert seen == [(1, "down 1", 0.5), (2, "down 2", 1.0)]


async def test_a_first_attempt_that_succeeds_builds_no_retry_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """tenacity's loop is built only once an attempt failed in a way worth retrying."""

    def no_loop(*args: Any, **kwargs: Any) -> AsyncRetrying:
        raise AssertionError("tenacity's loop was built for a call that needed no retry")

    monkeypatch.setattr("gateway.dify.retry.AsyncRetrying", no_loop)
    policy, clock = RetryPolicy(max_attempts=3), FakeClock()
    assert await policy.call(Failing(), sleep=clock.sleep, rand=lambda: 0.5, deadline=FAR) == "ok"
    for error in (UpstreamError("bad request"), ValueError("a bug")):  # not retried: no loop either
        with pytest.raises(type(error)):
            await policy.call(Failing(error), sleep=clock.sleep, rand=lambda: 0.5, deadline=FAR)


async def test_the_first_failure_counts_as_attempt_one() -> None:
    """The failure that started the loop is attempt 1: no extra call, the same schedule and reports."""
    errors, seen = retryable(4), []
    attempt, clock = Failing(*errors), FakeClock()
    with pytest.raises(UpstreamError) as caught:
        await RetryPolicy(max_attempts=3, base_delay=1.0).call(
            attempt, sleep=clock.sleep, rand=lambda: 0.5, deadline=FAR,
            on_retry=lambda number, error, delay: seen.append((number, error.message, delay)),
        )  # fmt: skip
    assert caught.value is errors[2]
    assert attempt.calls == 3
    assert seen == [(1, "down 1", 0.5), (2, "down 2", 1.0)]
    assert clock.monotonic() == pytest.approx(1.5)


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"max_delay": -0.1}])
def test_invalid_policy(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)
