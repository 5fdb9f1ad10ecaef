"""When to try a signed callback again: the schedule, jitter and the receiver's `Retry-After`
(read by gateway/retry_after.py).

Pure functions: no I/O, no clock, no randomness of their own (the caller passes `rand` and
`now`), so every branch is testable with plain values. The schedule follows Svix
(platforms.md §4.4-4.5): at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, about 27.6 hours
in all; after the last attempt the message is dead-lettered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "CALLBACK_SCHEDULE",
    "JITTER",
    "MAX_RETRY_AFTER_S",
    "next_callback_delay",
]

# Delay before attempt n+1 is CALLBACK_SCHEDULE[n]; entry 0 is the first attempt (at once).
CALLBACK_SCHEDULE: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.1  # ±10 %, so retries of many messages failing together don't arrive in lockstep
MAX_RETRY_AFTER_S = 86_400.0  # a receiver may slow us down, but not park a message for weeks


def next_callback_delay(
    attempts_made: int,
    *,
    rand: float,
    retry_after: float | None = None,
    schedule: Sequence[float] = CALLBACK_SCHEDULE,
    max_retry_after: float = MAX_RETRY_AFTER_S,
) -> float | None:
    """Seconds to wait before the next attempt, after `attempts_made` attempts; None when none is left.

    `attempts_made` counts attempts already made (0 = none yet, so the first attempt's delay,
    `schedule[0]`). The scheduled delay gets ±10 % jitter from `rand` in [0, 1): a zero delay stays
    zero. A receiver's `retry_after` (seconds) is honoured as a lower bound, capped at
    `max_retry_after`; it never revives an exhausted schedule (None means dead letter).
    Raises ValueError for a negative `attempts_made` or a `rand` outside [0, 1).
    """
    if attempts_made < 0:
        raise ValueError("attempts_made must not be negative")
    if not 0.0 <= rand < 1.0:  # also rejects NaN
        raise ValueError("rand must be in [0, 1)")
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made] * (1.0 - JITTER + 2.0 * JITTER * rand)
    if retry_after is not None and not math.isnan(retry_after):
        # No jitter on the receiver's value: it asked for "not before", so never go under it.
        delay = max(delay, min(retry_after, max_retry_after))
    return delay
