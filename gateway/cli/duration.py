"""`--grace 24h`: a click parameter type for durations (seconds, or a number with s, m, h or d)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import click

__all__ = ["DURATION", "Duration"]

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


if TYPE_CHECKING:  # generic in click's stubs of 8.2+, not at run time before
    _ParamType = click.ParamType[float]
else:
    _ParamType = click.ParamType


class Duration(_ParamType):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        match = _PATTERN.match(str(value))
        seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else math.nan
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a duration such as 90, 30m, 24h or 7d", param, ctx)
        return seconds


DURATION = Duration()
