"""The edit throttle, on an injected clock (no sleeping)."""

from __future__ import annotations

import pytest

from endpoints.discord.throttle import EditThrottle
from gateway.clock import FakeClock

pytestmark = pytest.mark.anyio


def test_the_first_edit_goes_at_once_then_one_per_interval() -> None:
    clock = FakeClock()
    throttle = EditThrottle(1.0, clock)
    assert throttle.ready() and throttle.wait_time() == 0.0
    throttle.mark()
    assert not throttle.ready() and throttle.wait_time() == 1.0
    clock.advance(0.4)
    assert not throttle.ready() and throttle.wait_time() == pytest.approx(0.6)
    clock.advance(0.6)
    assert throttle.ready()


def test_a_429_holds_edits_longer_but_never_shorter() -> None:
    clock = FakeClock()
    throttle = EditThrottle(1.0, clock)
    throttle.backoff(3.0)
    throttle.mark()  # the normal interval does not shorten the backoff
    assert throttle.wait_time() == 3.0
    throttle.backoff(0.5)
    assert throttle.wait_time() == 3.0
    throttle.backoff(-1)
    assert throttle.wait_time() == 3.0
    clock.advance(3.0)
    assert throttle.ready()


async def test_wait_sleeps_on_the_clock_only_when_needed() -> None:
    clock = FakeClock()
    throttle = EditThrottle(2.0, clock)
    await throttle.wait()
    assert clock.monotonic() == 0.0
    throttle.mark()
    await throttle.wait()
    assert clock.monotonic() == 2.0 and throttle.ready()


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        EditThrottle(-1, FakeClock())
    assert EditThrottle(0, FakeClock()).ready()
