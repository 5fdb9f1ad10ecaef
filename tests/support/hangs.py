"""Seeing where a hung test waits: the stacks of every thread and every asyncio task.

`install_dump_on_signal()` makes `kill -USR1 <pytest pid>` print them to stderr without stopping
the run; `dump_everything()` is what a timeout (pytest-timeout, see tests/conftest.py) prints
before it fails the test. A test stuck in the event loop shows no useful thread stack (the loop
is idle in `select`): the task stacks show which `await` each coroutine is parked on.
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TextIO

__all__ = ["dump_everything", "install_dump_on_signal", "task_stacks"]


def _awaited_frames(task: asyncio.Task[object]) -> list[FrameType]:
    """The frames of the await chain of `task`, outermost first (`Task.print_stack` shows only the
    outermost frame of a suspended coroutine; the line it waits on is usually deep inside)."""
    frames: list[FrameType] = []
    awaitable: object = task.get_coro()
    for _ in range(200):
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        frame = frame or getattr(awaitable, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        nxt = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
        awaitable = nxt or getattr(awaitable, "ag_await", None)
        if awaitable is None:
            break
    return frames


def task_stacks() -> str:
    """The stack of every unfinished task of the loop running in this thread ('' without one)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return ""
    out = io.StringIO()
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    out.write(f"--- {len(tasks)} asyncio task(s) ---\n")
    for task in tasks:
        out.write(f"\n{task!r}\n")
        for frame in _awaited_frames(task):
            out.write(f'  File "{frame.f_code.co_filename}", line {frame.f_lineno}, in {frame.f_code.co_name}\n')
    return out.getvalue()


def dump_everything(stream: TextIO | None = None) -> None:
    """Every thread's stack, then every asyncio task's, to `stream` (the real stderr by default)."""
    stream = stream or sys.__stderr__ or sys.stderr
    stream.write("\n+++ stacks of all threads +++\n")
    stream.flush()
    faulthandler.dump_traceback(file=stream, all_threads=True)
    stream.write(task_stacks())
    stream.write("+++ end of stacks +++\n")
    stream.flush()


def install_dump_on_signal(dump: Callable[[], None] = dump_everything, signum: int = signal.SIGUSR1) -> None:
    """On `signum`, call `dump` (every stack, see `dump_everything`) and carry on."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        dump()

    signal.signal(signum, handler)
