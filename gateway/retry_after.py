"""How long an answer asks us to wait: the one reader of `Retry-After` (RFC 9110 §10.2.3).

Used for callbacks' receivers (gateway/delivery/callbacks.py), chat platforms' 429s (Slack, Discord,
re-exported to plugins by `gateway.plugin`) and anything else that is told to come back later.
Pure: no I/O, no clock of its own (an HTTP-date needs the caller's `now`). `retry_after_header`
is its writer: the value we send when we ask a caller to come back.
"""

from __future__ import annotations

import math
import re
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import overload

__all__ = ["retry_after_header", "retry_after_seconds"]

# ASCII only (str.isdigit() would accept "١٢"); a fraction is tolerated, as some platforms send one.
_DELTA_SECONDS = re.compile(r"([0-9]+)(\.[0-9]+)?")
_MAX_DELTA_DIGITS = 10
_DELTA_OVERFLOW = float(2**31)  # RFC 9111 §1.2.2: too-large delta-seconds count as 2^31
_MAX_HEADER_CHARS = 64  # an HTTP-date is 29 characters; anything much longer is junk


@overload
def retry_after_seconds(
    value: object, *, now: float | None = None, default: float = 1.0, cap: float = 60.0
) -> float: ...


@overload
def retry_after_seconds(
    value: object, *, now: float | None = None, default: None, cap: float = 60.0
) -> float | None: ...


def retry_after_seconds(
    value: object, *, now: float | None = None, default: float | None = 1.0, cap: float = 60.0
) -> float | None:
    """Seconds to wait before trying again, never more than `cap`. Never raises.

    Args:
        value: a `Retry-After` header value — delta-seconds, or an HTTP-date when `now` is given
            (a date without a zone counts as GMT; a past date means no wait) — or a JSON body's
            `retry_after` number (as Discord sends it: a negative one is the platform's reset
            time minus now, so no wait), or None.
        now: the current wall-clock time, to read an HTTP-date against; without it a date is
            unreadable.
        default: the wait when `value` is missing or unreadable (junk, NaN, a negative header);
            None to tell "nothing asked" apart.
        cap: the longest wait (a job waits longer by being retried later).

    Example: `retry_after_seconds(response.headers.get("retry-after"))`.
    """
    seconds = _parse(value, now)
    return default if seconds is None else min(seconds, cap)


def _parse(value: object, now: float | None) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if math.isnan(value) else max(0.0, float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > _MAX_HEADER_CHARS:
        return None
    if match := _DELTA_SECONDS.fullmatch(text):
        # Length first: int() on thousands of digits is slow, and raises past 4300 of them.
        whole = match.group(1)
        return _DELTA_OVERFLOW if len(whole) > _MAX_DELTA_DIGITS else float(text)
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000" means "zone unknown"; HTTP-dates are always GMT
            when = when.replace(tzinfo=UTC)
        delay = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):  # the stdlib parser's ways of saying "junk"
        return None
    return max(0.0, delay)


def retry_after_header(seconds: float) -> str:
    """The `Retry-After` value asking to wait `seconds`: whole delta-seconds, rounded up, at least 1
    (a 0 invites an immediate retry, and NaN or infinity, which `math.ceil` refuses, count as 1)."""
    return str(max(1, math.ceil(seconds))) if math.isfinite(seconds) else "1"
