"""The bot's edit throttle (injected clock): the one the interaction endpoint uses, so bot replies
and `/ask` answers are paced alike. Defined in `endpoints.discord.throttle`."""

from __future__ import annotations

from endpoints.discord.throttle import EditThrottle, ThrottleClock

__all__ = ["EditThrottle", "ThrottleClock"]
