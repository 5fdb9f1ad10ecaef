"""The one `Retry-After` reader (header values, JSON body numbers, HTTP-dates, junk) and its writer."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest

import gateway.plugin
from gateway.retry_after import retry_after_header, retry_after_seconds

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # header values: delta-seconds
        ("3", 3.0),
        (" 2 ", 2.0),
        ("0.5", 0.5),  # a fraction, as some platforms send
        ("0", 0.0),
        ("00012", 12.0),
        ("3600", 60.0),  # capped: a job retries later instead of holding a worker
        ("99999999999", 60.0),
        # JSON body values (Discord's `retry_after`, a number)
        (0.25, 0.25),
        (2, 2.0),
        (3600, 60.0),
        (-5, 0.0),  # the platform's reset time is past: no wait
        # junk: the default
        (None, 1.0),
        ("soon", 1.0),
        ("", 1.0),
        ("   ", 1.0),
        ("-5", 1.0),  # not delta-seconds
        ("+5", 1.0),
        ("1e3", 1.0),
        ("inf", 1.0),
        ("nan", 1.0),
        ("7 seconds", 1.0),
        ("\u0661\u0662", 1.0),  # Arabic-Indic digits: not ASCII
        ("\uff17", 1.0),  # full-width 7
        ("1" * 65, 1.0),  # longer than any real header: refused before any work
        ("1" * 5000, 1.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1.0),  # a date, but no `now` to read it against
        (math.nan, 1.0),
        (True, 1.0),
        ({"retry_after": 2}, 1.0),
    ],
)
def test_values(value: object, seconds: float) -> None:
    assert retry_after_seconds(value) == seconds


def test_another_default_and_cap() -> None:
    assert retry_after_seconds("soon", default=5.0, cap=10.0) == 5.0
    assert retry_after_seconds("30", default=5.0, cap=10.0) == 10.0
    assert retry_after_seconds("soon", default=None) is None
    assert retry_after_seconds(None, default=None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("9999999999", 9_999_999_999.0),  # 10 digits: taken as is
        ("99999999999", float(2**31)),  # longer: RFC 9111's 2^31
        ("1" * 64, float(2**31)),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW + 3600, usegmt=True), 3600.0),
        (formatdate(NOW - 3600, usegmt=True), 0.0),  # past: go now, never negative
        (formatdate(NOW, usegmt=True), 0.0),
        ("Tue, 14 Nov 2023 22:14:20 -0000", 60.0),  # "zone unknown" is read as GMT
        ("Tue, 14 Nov 2023 23:14:20 +0100", 60.0),
        ("Tuesday, 14-Nov-23 22:14:20 GMT", 60.0),  # the obsolete RFC 850 form
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),  # no such day
        ("Wed, 21 Oct 99999 07:28:00 GMT", None),  # year out of range
        ("x" * 100, None),
    ],
)
def test_http_dates_and_uncapped_values(value: str, expected: float | None) -> None:
    seconds = retry_after_seconds(value, now=NOW, default=None, cap=math.inf)
    assert seconds == (pytest.approx(expected) if expected is not None else None)


def test_plugins_get_the_same_function() -> None:
    assert gateway.plugin.retry_after_seconds is retry_after_seconds


@pytest.mark.parametrize(
    ("seconds", "header"),
    [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (59.5, "60"), (-3.0, "1"), (math.nan, "1"), (math.inf, "1")],
)
def test_the_header_we_send_is_whole_seconds_at_least_one(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header
    assert retry_after_seconds(retry_after_header(seconds)) == float(header)  # our reader reads our writer
