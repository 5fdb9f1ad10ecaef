"""A per-app circuit breaker on an injected clock.

closed --(K consecutive failures)--> open --(cool-down elapsed)--> half-open
half-open lets exactly one trial through: success closes, failure re-opens for a new cool-down.
While open (or while the trial runs) calls fail fast with `CircuitOpen`, so a broken Dify app
doesn't hold every user for a full timeout-and-retry cycle.

Every admitted call holds a `Ticket` and settles it once: `success()`, `failure()` or `release()`
(ended without a verdict). A ticket only counts in the period it was issued in: a call admitted
before the breaker opened can neither close it nor free the half-open trial slot when it ends
later, so "one trial" stays one trial however many older calls are still in flight.
Which errors are failures is the caller's decision (`gateway.dify.errors.counts_against_app`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from gateway.clock import Clock
from gateway.exceptions import CircuitOpen, ConfigurationError

__all__ = ["BreakerRegistry", "BreakerState", "CircuitBreaker", "Ticket"]

BreakerState = Literal["closed", "open", "half-open"]
_Verdict = Literal["success", "failure", "none"]


class Ticket:
    """One admitted call. Settle it exactly once; later settlements are ignored."""

    __slots__ = ("_breaker", "_period", "_settled", "trial")

    def __init__(self, breaker: CircuitBreaker, period: int, trial: bool) -> None:
        self._breaker = breaker
        self._period = period
        self._settled = False
        self.trial = trial  # the one call let through in half-open state

    def success(self) -> None:
        self._settle("success")

    def failure(self) -> None:
        self._settle("failure")

    def release(self) -> None:
        """The call ended without saying anything about the app (abandoned, or not its fault)."""
        self._settle("none")

    def _settle(self, verdict: _Verdict) -> None:
        if not self._settled:
            self._settled = True
            self._breaker._settle(self._period, self.trial, verdict)


@dataclass(slots=True)
class CircuitBreaker:
    """Tracks one app's health. `acquire()` before a call, then settle the returned `Ticket`."""

    name: str
    clock: Clock
    failure_threshold: int = 5
    cool_down: float = 30.0
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _trial_running: bool = field(default=False, init=False)
    _period: int = field(default=0, init=False)  # bumped whenever the breaker opens

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

    def acquire(self) -> Ticket:
        """Admit a call or raise `CircuitOpen`. In half-open state only one trial may run."""
        state = self.state
        if state == "closed":
            return Ticket(self, self._period, trial=False)
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return Ticket(self, self._period, trial=True)
        assert self._opened_at is not None
        remaining = max(self.cool_down - (self.clock.monotonic() - self._opened_at), 0.0)
        seconds = max(math.ceil(remaining), 1)
        raise CircuitOpen(
            f"the Dify app '{self.name}' is failing; paused for {seconds} s after repeated errors",
            app=self.name,
            retry_after=seconds,
        )

    def _settle(self, period: int, trial: bool, verdict: _Verdict) -> None:
        if period != self._period:
            return  # admitted before the breaker last opened: too old to judge the app now
        if trial:
            self._trial_running = False
        if verdict == "success":
            self._failures = 0
            self._opened_at = None
        elif verdict == "failure":
            self._failures += 1
            if trial or self._failures >= self.failure_threshold:
                self._opened_at = self.clock.monotonic()
                self._period += 1
                self._trial_running = False


@dataclass(slots=True)
class BreakerRegistry:
    """One breaker per app key, created on first use. Owned by a client, never global."""

    clock: Clock
    failure_threshold: int = 5
    cool_down: float = 30.0
    _breakers: dict[tuple[str, str], CircuitBreaker] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        CircuitBreaker("check", self.clock, self.failure_threshold, self.cool_down)  # refuse bad settings early

    def get(self, name: str, base_url: str) -> CircuitBreaker:
        key = (name, base_url)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(name, self.clock, self.failure_threshold, self.cool_down)
            self._breakers[key] = breaker
        return breaker
