"""A small closed-loop HTTP load generator (aiohttp) shared by the benchmarks.

`concurrency` workers each send a request, wait for the whole answer, and send the next, for
`duration` seconds after a warm-up; requests per second and latency percentiles are reported.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self) -> str:
        return (
            f"{self.name:<28} {self.rps:>9.0f} req/s   p50 {self.pct(0.50):>7.2f} ms   "
            f"p99 {self.pct(0.99):>7.2f} ms   errors {self.errors}"
        )


async def run_load(
    name: str,
    url: str,
    *,
    method: str = "POST",
    body: bytes = b'{"hello": "world"}',
    headers: dict[str, str] | None = None,
    concurrency: int = 50,
    duration: float = 10.0,
    warmup: float = 1.0,
    max_requests: int = 1_000_000,
) -> Result:
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    errors = 0
    count = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def worker() -> None:
            nonlocal errors, count
            while True:
                now = time.perf_counter()
                if now >= stop_at or count >= max_requests:
                    return
                t0 = time.perf_counter()
                try:
                    async with session.request(method, url, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status < 400
                except aiohttp.ClientError:
                    ok = False
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    count += 1
                    latencies.append(t1 - t0)
                    errors += 0 if ok else 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = min(time.perf_counter(), stop_at) - measure_from
    return Result(name, count, errors, elapsed, latencies)


def ratio_line(subject: Result, baseline: Result) -> str:
    return (
        f"ratio {subject.name} / {baseline.name}: throughput {subject.rps / baseline.rps:.2f}x, "
        f"p50 {subject.pct(0.5) / baseline.pct(0.5):.2f}x, p99 {subject.pct(0.99) / baseline.pct(0.99):.2f}x"
    )


__all__ = ["Result", "ratio_line", "run_load", "statistics"]
