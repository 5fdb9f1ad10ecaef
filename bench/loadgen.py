"""A small closed-loop HTTP load generator (aiohttp) shared by the benchmarks.

`concurrency` workers each send a request, wait for the whole answer, and send the next, for
`duration` seconds after a warm-up; requests per second and latency percentiles are reported.
With `first_marker`, the answer is read line by line and the time to the first line containing
the marker is kept too (time to first token of a stream).

`run_burst` is the open-loop counterpart: `streams` requests sent at once, each read to its end,
counting the ones that completed (their last line seen) and why the others did not.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

__all__ = [
    "Burst",
    "Result",
    "percentile",
    "ratio_line",
    "rounds_summary",
    "run_burst",
    "run_load",
    "spread",
    "ttft_lines",
]

RequestFactory = Callable[[], tuple[bytes, dict[str, str]]]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile of `values` (seconds) in milliseconds; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    ttfts: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q)

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
    request: RequestFactory | None = None,
    first_marker: bytes | None = None,
    concurrency: int = 50,
    duration: float = 10.0,
    warmup: float = 1.0,
    max_requests: int = 1_000_000,
) -> Result:
    """Load `url`; `request`, when given, makes each request's (body, headers) (e.g. freshly signed)."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    ttfts: list[float] = []
    errors = 0
    count = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def one() -> tuple[bool, float | None]:
            data, sent_headers = request() if request else (body, headers or {})
            t0 = time.perf_counter()
            seen: float | None = None
            async with session.request(method, url, data=data, headers=sent_headers) as response:
                if first_marker is None:
                    await response.read()
                else:
                    async for line in response.content:
                        if seen is None and first_marker in line:
                            seen = time.perf_counter() - t0
                ok = response.status < 400 and (first_marker is None or seen is not None)
            return ok, seen

        async def worker() -> None:
            nonlocal errors, count
            while time.perf_counter() < stop_at and count < max_requests:
                t0 = time.perf_counter()
                try:
                    ok, seen = await one()
                except aiohttp.ClientError:
                    ok, seen = False, None
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    count += 1
                    latencies.append(t1 - t0)
                    errors += 0 if ok else 1
                    if seen is not None:
                        ttfts.append(seen)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = min(time.perf_counter(), stop_at) - measure_from
    return Result(name, count, errors, elapsed, latencies, ttfts)


def ratio_line(subject: Result, baseline: Result) -> str:
    return (
        f"ratio {subject.name} / {baseline.name}: throughput {subject.rps / baseline.rps:.2f}x, "
        f"p50 {subject.pct(0.5) / baseline.pct(0.5):.2f}x, p99 {subject.pct(0.99) / baseline.pct(0.99):.2f}x"
    )


def ttft_lines(label: str, direct: Sequence[float], through: Sequence[float]) -> list[str]:
    """Time-to-first-token rows: the baseline, through the gateway, and what the gateway added."""
    d50, d99, g50, g99 = (
        percentile(direct, 0.5),
        percentile(direct, 0.99),
        percentile(through, 0.5),
        percentile(through, 0.99),
    )
    return [
        f"  simulator direct   p50 {d50:7.2f}   p99 {d99:7.2f}",
        f"  through {label:<10} p50 {g50:7.2f}   p99 {g99:7.2f}",
        f"  added by gateway   p50 {g50 - d50:7.2f}   p99 {g99 - d99:7.2f}"
        f"   (ratio p50 {g50 / d50:.2f}x, p99 {g99 / d99:.2f}x)",
    ]


@dataclass
class Burst:
    name: str
    streams: int
    completed: int
    seconds: float
    ttfts: list[float]
    failures: Counter[str]

    def row(self) -> str:
        failed = ", ".join(f"{why} x{n}" for why, n in self.failures.most_common(3)) or "none"
        return (
            f"{self.name:<22} completed {self.completed:>5}/{self.streams:<5} in {self.seconds:6.2f} s   "
            f"ttft p50 {percentile(self.ttfts, 0.5):8.1f} ms  p99 {percentile(self.ttfts, 0.99):8.1f} ms   "
            f"failed: {failed}"
        )


async def run_burst(
    name: str,
    url: str,
    *,
    streams: int,
    request: RequestFactory,
    first_marker: bytes,
    done_marker: bytes,
    timeout: float = 300.0,
) -> Burst:
    """Send `streams` streaming requests at once; a stream completed when `done_marker` arrived."""
    connector = aiohttp.TCPConnector(limit=streams)
    ttfts: list[float] = []
    failures: Counter[str] = Counter()
    completed = 0
    session_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=session_timeout) as session:
        start = time.perf_counter()

        async def one() -> None:
            nonlocal completed
            data, sent_headers = request()
            t0 = time.perf_counter()
            seen = done = False
            try:
                async with session.post(url, data=data, headers=sent_headers) as response:
                    if response.status >= 400:
                        failures[f"HTTP {response.status}"] += 1
                        await response.read()
                        return
                    async for line in response.content:
                        if not seen and first_marker in line:
                            seen = True
                            ttfts.append(time.perf_counter() - t0)
                        if done_marker in line:
                            done = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures[type(exc).__name__] += 1
                return
            if done:
                completed += 1
            else:
                failures["ended without its last event"] += 1

        await asyncio.gather(*(one() for _ in range(streams)))
        elapsed = time.perf_counter() - start
    return Burst(name, streams, completed, elapsed, ttfts, failures)


def spread(values: Sequence[float], unit: str = "x") -> str:
    """`median M (min A, max B)` of the values of several rounds."""
    ordered = sorted(values)
    return f"median {ordered[len(ordered) // 2]:.2f}{unit} (min {ordered[0]:.2f}{unit}, max {ordered[-1]:.2f}{unit})"


def rounds_summary(pairs: Sequence[tuple[Result, Result]]) -> list[str]:
    """Median and min–max over rounds of (subject, baseline) runs: throughput and p50/p99 ratios."""
    return [
        f"over {len(pairs)} rounds, {pairs[0][0].name} / {pairs[0][1].name}:",
        "  throughput " + spread([s.rps / b.rps for s, b in pairs]),
        "  p50        " + spread([s.pct(0.5) / b.pct(0.5) for s, b in pairs]),
        "  p99        " + spread([s.pct(0.99) / b.pct(0.99) for s, b in pairs]),
    ]
