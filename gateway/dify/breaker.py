"""A per-app circuit breaker on an injected clock.

closed --(K consecutive failures)--> open --(cool-down elapsed)--> half-open
half-open lets exactly one probe through: success closes, failure re-opens for a new cool-down.
While open (or while the probe runs) calls fail fast with `CircuitOpen`, so a broken Dify app
doesn't hold every user for a full timeout-and-retry cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from gateway.clock import Clock
from gateway.exceptions import CircuitOpen, ConfigurationError

__all__ = ["BreakerRegistry", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(slots=True)
class CircuitBreaker:
    """Tracks one app's health. Call `acquire()` before a call, then exactly one of
    `record_success()`, `record_failure()` or `release()` (the call ended without a verdict)."""

    name: str
    clock: Clock
    failure_threshold: int = 5
    cool_down: float = 30.0
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _probing: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cool_down < 0:
            raise ConfigurationError("breaker threshold must be >= 1 and cool-down >= 0")

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self.clock.monotonic() - self._opened_at >= self.cool_down:
            return "half-open"
        return "open"

    def acquire(self) -> None:
        """Allow a call or raise `CircuitOpen`. In half-open state only one probe may run."""
        state = self.state
        if state == "closed":
            return
        if state == "half-open" and not self._probing:
            self._probing = True
            return
        assert self._opened_at is not None
        remaining = max(self.cool_down - (self.clock.monotonic() - self._opened_at), 0.0)
        seconds = max(math.ceil(remaining), 1)
        raise CircuitOpen(
            f"the Dify app '{self.name}' is failing; paused for {seconds} s after repeated errors",
            app=self.name,
            retry_after=seconds,
        )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self.clock.monotonic()
        self._probing = False

    def release(self) -> None:
        """The call was abandoned (e.g. cancelled) before it said anything about the app."""
        self._probing = False


@dataclass(slots=True)
class BreakerRegistry:
    """One breaker per app key, created on first use. Owned by a client, never global."""

    clock: Clock
    failure_threshold: int = 5
    cool_down: float = 30.0
    _breakers: dict[tuple[str, str], CircuitBreaker] = field(default_factory=dict, init=False)

    def get(self, name: str, base_url: str) -> CircuitBreaker:
        key = (name, base_url)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(name, self.clock, self.failure_threshold, self.cool_down)
            self._breakers[key] = breaker
        return breaker
