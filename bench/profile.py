"""Profiling a benchmarked server with py-spy (`pip install py-spy`): self time, top N functions.

`Profiler(pid, seconds, out)` samples the process while the load runs (`py-spy record --format raw`,
collapsed stacks); `top_self(out)` counts, for each function, the samples in which it was the
innermost frame (its self time) and returns the N largest with their share of all samples.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.loadgen import Result, run_load

__all__ = ["Profiler", "cpu_seconds", "load_with_cpu", "memory_mib", "top_self"]

_LINE = re.compile(r":\d+\)$")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_with_cpu(pid: int, name: str, url: str, **options: Any) -> tuple[Result, float]:
    """One `run_load` (its options) against the server `pid`; the result and the server's CPU
    seconds per request (all threads, warm-up included)."""
    cpu = cpu_seconds(pid)
    result = asyncio.run(run_load(name, url, **options))
    return result, (cpu_seconds(pid) - cpu) / max(1, result.requests)


def memory_mib(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MiB (Linux /proc)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


class Profiler:
    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        exe = shutil.which("py-spy")
        if exe is None:
            raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
        self.out = out
        self._proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait(self) -> None:
        self._proc.wait(60)


def top_self(collapsed: Path, n: int = 5) -> list[str]:
    """The `n` functions with the most self samples in a collapsed-stack file, as printable rows."""
    counts: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        leaf = _LINE.sub(")", stack.rsplit(";", 1)[-1])  # per function, not per line
        counts[leaf] += int(samples)
        total += int(samples)
    return [f"{count / total:6.1%}  {frame}" for frame, count in counts.most_common(n)] if total else []
