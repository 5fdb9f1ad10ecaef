"""`dify-gateway serve` under tracemalloc, for `bench_soak.py --trace` (where the memory of a stream goes).

    python bench/traced_serve.py FRAMES OUT_PREFIX

SIGUSR1 takes the "idle" snapshot (then writes OUT_PREFIX.ready) and starts watching: from then
on a thread takes a "peak" snapshot as soon as the traced memory grows past idle, then a new one
each time it grows 5 % past the last (so the kept one is within 5 % of the peak, however light the
load; if it never grew at all, SIGUSR2 takes it). SIGUSR2 writes both to OUT_PREFIX.idle and
OUT_PREFIX.peak (`Snapshot.load`). A measuring tool: tracing slows the process several times, so
its timings mean nothing.
"""

from __future__ import annotations

import signal
import sys
import threading
import tracemalloc
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's gateway, whatever is installed


class Watch:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.idle: tracemalloc.Snapshot | None = None
        self.peak: tracemalloc.Snapshot | None = None
        self.peak_size = 0
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def start(self, signum: int, frame: FrameType | None) -> None:
        self.idle = tracemalloc.take_snapshot()
        self.peak_size = tracemalloc.get_traced_memory()[0]
        threading.Thread(target=self.watch, daemon=True).start()
        with open(self.prefix + ".ready", "w") as ready:
            ready.write(str(self.peak_size))

    def watch(self) -> None:
        above: float = self.peak_size  # idle: the first snapshot on any growth, then each 5 % past the last
        while not self.stopped.wait(0.05):
            current = tracemalloc.get_traced_memory()[0]
            if current > above:
                snapshot = tracemalloc.take_snapshot()
                with self.lock:
                    self.peak, self.peak_size = snapshot, current
                above = current * 1.05

    def dump(self, signum: int, frame: FrameType | None) -> None:
        self.stopped.set()
        with self.lock:
            assert self.idle is not None, "SIGUSR1, then load, then SIGUSR2"
            if self.peak is None:  # never grew past idle: the memory now is as good a peak
                self.peak, self.peak_size = tracemalloc.take_snapshot(), tracemalloc.get_traced_memory()[0]
            self.idle.dump(self.prefix + ".idle")
            self.peak.dump(self.prefix + ".peak")
        with open(self.prefix + ".done", "w") as done:
            done.write(str(self.peak_size))


def main() -> None:
    frames, prefix = int(sys.argv[1]), sys.argv[2]
    from gateway.cli.main import main as cli  # imported untraced: tracing the imports is slow

    tracemalloc.start(frames)
    watch = Watch(prefix)
    signal.signal(signal.SIGUSR1, watch.start)
    signal.signal(signal.SIGUSR2, watch.dump)
    sys.argv = ["dify-gateway", "serve"]
    cli()


if __name__ == "__main__":
    main()
