"""The budget of a slash command's `response_url`, pure: at most 5 posts within 30 minutes
(platforms.md §1.9). Pacing is the delivery engine's (`gateway.plugin.deliver`), which also keeps
the last use for the final answer (`command.SlashReply.writes_left`).
"""

from __future__ import annotations

__all__ = ["RESPONSE_URL_USES", "RESPONSE_URL_WINDOW", "UseBudget"]

RESPONSE_URL_USES = 5
RESPONSE_URL_WINDOW = 30 * 60.0


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
