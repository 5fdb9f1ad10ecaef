"""When to try a signed callback again: the schedule, jitter and the receiver's `Retry-After`.

Pure functions: no I/O, no clock, no randomness of their own (the caller passes `rand` and
`now`), so every branch is testable with plain values. The schedule follows Svix
(platforms.md §4.4-4.5): at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, about 27.6 hours
in all; after the last attempt the message is dead-lettered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = [
    "CALLBACK_SCHEDULE",
    "JITTER",
    "MAX_RETRY_AFTER_S",
    "next_callback_delay",
    "parse_retry_after",
]

# Delay before attempt n+1 is CALLBACK_SCHEDULE[n]; entry 0 is the first attempt (at once).
CALLBACK_SCHEDULE: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.1  # ±10 %, so retries of many messages failing together don't arrive in lockstep
MAX_RETRY_AFTER_S = 86_400.0  # a receiver may slow us down, but not park a message for weeks

_DELTA_SECONDS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept "١٢"
_MAX_DELTA_DIGITS = 10
_DELTA_OVERFLOW = float(2**31)  # RFC 9111 §1.2.2: too-large delta-seconds count as 2^31
_MAX_HEADER_CHARS = 64  # an HTTP-date is 29 characters; anything much longer is junk


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


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from `now` that a `Retry-After` header asks for; None if missing or junk. Never raises.

    Accepts delta-seconds (ASCII digits only; more than 10 digits count as 2^31, per RFC 9111)
    or an HTTP-date (a date without a zone counts as UTC). A date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_HEADER_CHARS:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        # Length first: int() on thousands of digits is slow, and raises past 4300 of them.
        return _DELTA_OVERFLOW if len(text) > _MAX_DELTA_DIGITS else float(int(text))
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000" means "zone unknown"; HTTP-dates are always GMT
            when = when.replace(tzinfo=UTC)
        delay = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):  # the stdlib parser's ways of saying "junk"
        return None
    return max(0.0, delay)
