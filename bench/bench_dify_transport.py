"""Benchmark: DifyClient streaming over httpx's default transport vs the httpx-aiohttp transport.

    python bench/bench_dify_transport.py [--requests 2000] [--concurrency 50] [--rounds 2] [--words 20]

The Dify simulator runs on a real uvicorn in a subprocess on loopback (no first-token latency,
no token pacing, a short echo answer of ~`words` tokens = that many SSE `message` events plus
`message_end`). This process then streams complete answers with `DifyClient.ask` from
`concurrency` workers, for each transport in turn (interleaved over `rounds`), with the same
client settings. Reported: answers/s, p50/p99 latency per answer, and this process's CPU time
per answer (the figure that matters when the server is the bottleneck).

Result on the development box (2 vCPUs shared by server and client, Python 3.11, uvloop,
50 streams, 2000 answers x 2 rounds, ~22 message events per answer):

    | transport        | answers | errors | answers/s | p50 ms  | p99 ms  | CPU ms/answer |
    |------------------|---------|--------|-----------|---------|---------|---------------|
    | httpx (default)  |    4000 |      0 |     292.2 |   163.2 |   374.0 |    2.749 |
    | httpx-aiohttp    |    4000 |      0 |     715.4 |    68.6 |   122.1 |    1.326 |

    httpx-aiohttp / httpx: 2.45x answers/s, 2.07x less client CPU per answer

so `make_http_client` (gateway/dify/client.py) defaults to the aiohttp transport.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import free_port, stop  # noqa: E402
from gateway.clock import SystemClock  # noqa: E402
from gateway.dify import AskRequest, DifyApp, DifyClient, RetryPolicy, make_http_client  # noqa: E402
from gateway.simulator.config import SimulatorConfig  # noqa: E402
from gateway.simulator.server import run_simulator  # noqa: E402

TRANSPORTS = {"httpx (default)": False, "httpx-aiohttp": True}


@dataclass
class Result:
    name: str
    answers: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def merge(self, other: Result) -> None:
        self.answers += other.answers
        self.errors += other.errors
        self.seconds += other.seconds
        self.cpu += other.cpu
        self.latencies += other.latencies

    @property
    def rate(self) -> float:
        return self.answers / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self) -> str:
        cpu_ms = self.cpu / self.answers * 1000 if self.answers else float("nan")
        return (
            f"| {self.name:<16} | {self.answers:>7} | {self.errors:>6} | {self.rate:>9.1f} | "
            f"{self.pct(0.50):>7.1f} | {self.pct(0.99):>7.1f} | {cpu_ms:>8.3f} |"
        )


HEADER = (
    "| transport        | answers | errors | answers/s | p50 ms  | p99 ms  | CPU ms/answer |\n"
    "|------------------|---------|--------|-----------|---------|---------|---------------|"
)


def serve(port: int) -> None:
    config = SimulatorConfig(first_token_latency=0.0, tokens_per_second=0.0, ping_interval=10.0, answer="echo")
    run_simulator("127.0.0.1", port, config)


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit("the simulator exited early")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/stats", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the simulator did not come up")


async def run_one(name: str, use_aiohttp: bool, port: int, args: argparse.Namespace) -> Result:
    http = make_http_client(use_aiohttp=use_aiohttp, max_connections=args.concurrency * 2)
    client = DifyClient(http, clock=SystemClock(), retry=RetryPolicy(max_attempts=1))
    app = DifyApp("bench", f"http://127.0.0.1:{port}/v1", "app-simulator", "chat")
    query = " ".join(f"word{i}" for i in range(args.words))
    result = Result(name)
    try:

        async def worker(quota: list[int], deadline: float, record: bool) -> None:
            while quota[0] > 0 and time.perf_counter() < deadline:
                quota[0] -= 1
                start = time.perf_counter()
                try:
                    answer = await client.ask(app, AskRequest(user="bench", query=query))
                    assert answer.complete
                except Exception:
                    result.errors += record
                    continue
                if record:
                    result.latencies.append(time.perf_counter() - start)
                    result.answers += 1

        async def phase(total: int, record: bool) -> None:
            quota = [total]
            deadline = time.perf_counter() + args.time_cap
            await asyncio.gather(*(worker(quota, deadline, record) for _ in range(args.concurrency)))

        await phase(args.warmup, record=False)
        cpu0, t0 = time.process_time(), time.perf_counter()
        await phase(args.requests, record=True)
        result.seconds = time.perf_counter() - t0
        result.cpu = time.process_time() - cpu0
    finally:
        await http.aclose()
    return result


async def bench(port: int, args: argparse.Namespace) -> dict[str, Result]:
    totals = {name: Result(name) for name in TRANSPORTS}
    for round_no in range(1, args.rounds + 1):
        order = list(TRANSPORTS.items())
        if round_no % 2 == 0:
            order.reverse()  # alternate who goes first, against warm-up/thermal bias
        print(f"\nround {round_no}")
        print(HEADER)
        for name, use_aiohttp in order:
            result = await run_one(name, use_aiohttp, port, args)
            print(result.row(), flush=True)
            totals[name].merge(result)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured answers per transport and round")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--words", type=int, default=20, help="query words; the answer has words + 2 tokens")
    parser.add_argument("--time-cap", type=float, default=60.0, help="seconds per measured phase, at most")
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop in the client")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the simulator
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], cwd=ROOT)
    try:
        wait_up(port, proc)
        loop = "asyncio"
        if not args.no_uvloop:
            try:
                import uvloop

                uvloop.install()
                loop = "uvloop"
            except ImportError:
                pass
        print(
            f"DifyClient.ask over loopback: {args.concurrency} concurrent streams, {args.requests} answers x "
            f"{args.rounds} rounds per transport, ~{args.words + 2} message events per answer, client loop {loop}"
        )
        totals = asyncio.run(bench(port, args))
    finally:
        stop(proc)

    print("\nall rounds")
    print(HEADER)
    for result in totals.values():
        print(result.row())
    base, fast = totals["httpx (default)"], totals["httpx-aiohttp"]
    if base.rate:
        print(f"\nhttpx-aiohttp / httpx: {fast.rate / base.rate:.2f}x answers/s", end="")
    if base.answers and fast.answers and fast.cpu:
        print(f", {(base.cpu / base.answers) / (fast.cpu / fast.answers):.2f}x less client CPU per answer")


if __name__ == "__main__":
    main()
