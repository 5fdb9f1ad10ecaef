"""Keeping Dify plugin processes out of the gateway's memory and environment.

A plugin runs as the gateway's user, and any process of a user may read another's
`/proc/<pid>/environ` (the gateway's secret keys, admin token, store URL), `/proc/<pid>/mem`
(through ptrace) and core dumps. A non-dumpable process (`prctl(PR_SET_DUMPABLE, 0)`) keeps all
three to root: its /proc files belong to root, ptrace by the same user is refused, no core is
written. The plugin's own environment is built from nothing (`PluginProcess`), so this closes
the other way in.

The flag is the gateway process's own, set before the first plugin starts and kept (an `execve`
resets it, so the plugins themselves stay ordinary processes). Its cost: a same-user profiler or
debugger (py-spy, gdb) needs root once a plugin ran. Linux only; elsewhere nothing is done.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

__all__ = ["dumpable", "make_non_dumpable"]

logger = logging.getLogger(__name__)

_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    result: int = libc.prctl(option, value, 0, 0, 0)
    return result


def make_non_dumpable() -> bool:
    """Make this process non-dumpable; whether it now is (False off Linux or when prctl fails)."""
    if not sys.platform.startswith("linux"):
        return False
    if _prctl(_PR_SET_DUMPABLE, 0) != 0:
        error = ctypes.get_errno()
        logger.warning(
            "could not make the gateway non-dumpable (%s): plugins may read its environment", os.strerror(error)
        )
        return False
    return True


def dumpable() -> bool | None:
    """Whether this process is dumpable; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    return _prctl(_PR_GET_DUMPABLE) != 0
