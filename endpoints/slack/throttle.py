"""Pacing of what is sent to Slack, pure and on an injected clock.

- `EditThrottle`: at most one edit of a streamed answer per interval (Slack's `chat.update` is
  Tier 3, `chat.postMessage` about one per second per channel; platforms.md §1.6).
- `UseBudget`: a `response_url` takes at most 5 posts within 30 minutes (§1.9).
- `retry_after_seconds`: how long a 429's `Retry-After` asks to wait.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "RESPONSE_URL_USES",
    "RESPONSE_URL_WINDOW",
    "EditThrottle",
    "UseBudget",
    "retry_after_seconds",
]

RESPONSE_URL_USES = 5
RESPONSE_URL_WINDOW = 30 * 60.0


class EditThrottle:
    """Spaces edits at least `interval` seconds apart on the clock `now` (a monotonic clock).

    The first edit may go at once; after `record()`, `wait_time()` tells how long until the next.
    """

    def __init__(self, interval: float, now: Callable[[], float]) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._now = now
        self._last: float | None = None

    def wait_time(self) -> float:
        """Seconds until the next edit may go (0 when it may go now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval - self._now())

    def ready(self) -> bool:
        return self.wait_time() == 0.0

    def record(self) -> None:
        """An edit went out now."""
        self._last = self._now()


class UseBudget:
    """At most `limit` uses within `window` seconds of `opened_at` (a wall-clock time).

    `used` counts uses already made (by an earlier attempt of the same job, too).
    """

    def __init__(
        self,
        opened_at: float,
        *,
        used: int = 0,
        limit: int = RESPONSE_URL_USES,
        window: float = RESPONSE_URL_WINDOW,
    ) -> None:
        self.opened_at = opened_at
        self.used = used
        self.limit = limit
        self.window = window

    def remaining(self, now: float) -> int:
        """Uses left at `now`: none once the window has closed."""
        if now - self.opened_at >= self.window:
            return 0
        return max(0, self.limit - self.used)

    def can_spare(self, now: float, keep: int) -> bool:
        """True when one use can be spent now and `keep` still remain afterwards."""
        return self.remaining(now) > keep


def retry_after_seconds(value: str | None, *, default: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait from a `Retry-After` header (delta-seconds); `default` when absent or odd,
    never more than `cap` (a job waits longer by being retried later instead)."""
    if value is None:
        return default
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return default
    if seconds != seconds or seconds < 0:  # NaN or negative
        return default
    return min(seconds, cap)
