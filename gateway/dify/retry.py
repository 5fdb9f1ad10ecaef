"""Retry policy for Dify calls: how many attempts, how long to wait between them, on tenacity.

Backoff is "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): the wait
after failed attempt `n` is uniform in `[0, min(max_delay, base_delay * 2 ** (n - 1))]`, so many
clients hit by the same outage don't retry in lockstep. Dify sends no `Retry-After`
(dify-api.md §1), so the schedule is ours.

tenacity runs the loop (stop after `max_attempts`, retry only retryable `UpstreamError`s,
re-raise the last error) and computes the exponential window; the waits go through the injected
clock's `sleep` and the draw through the injected `rand`, so tests need no real time.

The first attempt runs on its own: most calls succeed at once, and building tenacity's loop
(its strategies, state and per-attempt bookkeeping) for each of them was a few per cent of the
gateway's CPU per answer (docs/performance.md, openaiperf2). Only when that attempt fails with a
retryable error does tenacity take over, and it is handed that failure as its own attempt 1
(the error is raised again, not the call repeated), so the stop, wait, deadline and
`before_sleep` decisions are tenacity's, exactly as if it had run from the start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential
from tenacity.stop import stop_base

from gateway.exceptions import ConfigurationError, UpstreamError

__all__ = ["FullJitter", "RetryPolicy"]

T = TypeVar("T")

#: Called before each wait: (failed attempt number, its error, seconds about to be waited).
OnRetry = Callable[[int, UpstreamError, float], None]


class FullJitter(wait_exponential):
    """tenacity's `wait_random_exponential`, drawing from `rand` instead of the global `random`.

    The window after failed attempt `n` is tenacity's `wait_exponential` (`multiplier * 2 ** (n - 1)`,
    at most `cap`, overflow-safe); the wait is `rand()` (in [0, 1)) times that window.
    """

    def __init__(self, rand: Callable[[], float], *, multiplier: float, cap: float) -> None:
        super().__init__(multiplier=multiplier, max=cap)
        self._rand = rand

    def __call__(self, retry_state: RetryCallState) -> float:
        return super().__call__(retry_state) * self._rand()


class _WaitPassesDeadline(stop_base):
    """Stop when the upcoming wait would end at or after `deadline` (anyio time)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return anyio.current_time() + retry_state.upcoming_sleep >= self.deadline


def _retryable(error: BaseException) -> bool:
    return isinstance(error, UpstreamError) and error.retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most `max_attempts` tries (1 = never retry), with full-jitter exponential backoff.

    Example:
        policy = RetryPolicy(max_attempts=3, base_delay=0.5)
        result = await policy.call(attempt, sleep=clock.sleep, rand=rng.random, deadline=deadline)
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("retry max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("retry delays must not be negative")

    def wait(self, rand: Callable[[], float]) -> FullJitter:
        """The wait strategy: full jitter over this policy's exponential window, drawn with `rand`."""
        return FullJitter(rand, multiplier=self.base_delay, cap=self.max_delay)

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        sleep: Callable[[float], Awaitable[None]],
        rand: Callable[[], float],
        deadline: float,
        on_retry: OnRetry | None = None,
    ) -> T:
        """Run `attempt` until it returns, raises something not worth retrying, runs out of
        attempts, or the next wait would reach `deadline` (anyio time); then the last error is raised.

        Args:
            sleep: waits between attempts (the injected clock's `sleep`).
            rand: a float in [0, 1) per wait (the injected random generator).
            on_retry: told about each retry before its wait (for logs).
        """

        try:
            return await attempt()
        except UpstreamError as error:
            if self.max_attempts == 1 or not error.retryable:
                raise
            first: UpstreamError | None = error

        async def replayed() -> T:
            """Attempt 1 is the failure above; then the real attempts."""
            nonlocal first
            if first is not None:
                error, first = first, None
                raise error
            return await attempt()

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if on_retry is not None and isinstance(error, UpstreamError):
                on_retry(state.attempt_number, error, state.upcoming_sleep)

        retrying = AsyncRetrying(
            sleep=sleep,
            stop=stop_after_attempt(self.max_attempts) | _WaitPassesDeadline(deadline),
            wait=self.wait(rand),
            retry=retry_if_exception(_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(replayed)
