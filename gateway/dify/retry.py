"""Retry policy for Dify calls (pure): how many attempts, and how long to wait between them.

Backoff is "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): the wait
after failed attempt `n` is uniform in `[0, min(max_delay, base_delay * 2 ** (n - 1))]`, so many
clients hit by the same outage don't retry in lockstep. Dify sends no `Retry-After`
(dify-api.md §1), so the schedule is ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.exceptions import ConfigurationError, UpstreamError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most `max_attempts` tries (1 = never retry), with full-jitter exponential backoff.

    Example:
        policy = RetryPolicy(max_attempts=3, base_delay=0.5)
        policy.backoff(2, rand=random.Random(1).random)  # somewhere in [0, 1.0]
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("retry max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("retry delays must not be negative")

    def ceiling(self, attempt: int) -> float:
        """The largest wait after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt, 1) - 1, 62)  # 2**62 is plenty and avoids huge ints
        return min(self.max_delay, self.base_delay * float(2**exponent))

    def backoff(self, attempt: int, rand: Callable[[], float]) -> float:
        """Seconds to wait after failed attempt `attempt`; `rand()` returns a float in [0, 1)."""
        return self.ceiling(attempt) * rand()

    def should_retry(self, attempt: int, error: UpstreamError) -> bool:
        """True when `error` (from attempt `attempt`) is retryable and attempts remain."""
        return error.retryable and attempt < self.max_attempts
