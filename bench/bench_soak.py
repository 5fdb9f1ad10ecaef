"""Soak: N answer streams at once on one gateway process, beside the simulator called directly.

    python bench/bench_soak.py [--streams 100,500,2000] [--surface openai|webhook] [--trace FRAMES]
                               [--tokens-per-second 50] [--env GATEWAY_NAME=VALUE ...] [--profile FILE]
                               [--timeline]

For each N, a fresh Dify simulator and a fresh `dify-gateway serve` (default settings: answer
limit, queue timeout, Dify connection pool, breaker) each run in their own process. Then:

1. baseline: N streaming `POST /v1/chat-messages` sent at once straight to the simulator;
2. subject: N streaming answers sent at once through the gateway (`openai`: chat completions
   with `stream: true`; `webhook`: signed requests with `stream: true`, each a durable job).

Reported per run: streams completed (their last event arrived), time to first token p50/p99,
wall time, failures by kind, the gateway's resident memory idle and at its peak (VmHWM), and the
CPU time each process spent per stream (/proc, the number the machine's load moves least).
The simulator answers a 10-token sentence after 0.2 s at 50 tokens/s (its defaults), so an
answer takes about 0.4 s upstream; the ratios to the baseline are what the gateway adds.

`--tokens-per-second` paces the simulator's tokens (at 2 an answer lasts 5 s, so every admitted
stream is open at the peak: memory per *open* stream); `--env` sets a gateway setting for the run
(e.g. `GATEWAY_MAX_CONCURRENT_ANSWERS=2000`: what the answer limit does to the time to first
token). `--profile FILE` samples the gateway with py-spy during the burst (collapsed stacks in
FILE) and prints the functions with the most self time. `--trace FRAMES` runs the gateway under
tracemalloc (`bench/traced_serve.py`) and prints where the memory held at the peak went, per
stream, grouped by allocation site (FRAMES frames deep) and by file. Tracing slows the gateway
several times: its timings and RSS are not the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import Burst, percentile, run_burst  # noqa: E402
from bench.profile import Profiler, cpu_seconds, memory_mib, top_self  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, start_simulator, wait_up  # noqa: E402
from gateway.host.runtime import open_gateway  # noqa: E402
from gateway.records.apps import AppIn  # noqa: E402
from gateway.security.signatures import parse_webhook_secret, standard_webhook_headers  # noqa: E402
from gateway.settings import Settings  # noqa: E402

ANSWER = "The quick brown fox jumps over the lazy dog."


async def make_endpoint(settings: Settings, surface: str, sim_port: int) -> tuple[str, dict[str, str]]:
    gateway = await open_gateway(settings)
    try:
        app = AppIn(name="sim", base_url=f"http://127.0.0.1:{sim_port}/v1", api_key="app-simulator", mode="chat")  # type: ignore[arg-type]
        await gateway.apps.add(app)
        _, url, shown = await gateway.endpoints.create_with_secrets(surface, ["sim"], {})
        return url, shown
    finally:
        await gateway.aclose()


def gateway_requests(
    surface: str, url: str, shown: dict[str, str]
) -> tuple[str, Callable[[], tuple[bytes, dict[str, str]]], bytes, bytes]:
    """The URL, a request factory, and the first-token and last-event markers of a surface."""
    if surface == "openai":
        body = json.dumps(
            {"model": "sim", "messages": [{"role": "user", "content": "hi"}], "stream": True, "user": "bench"}
        ).encode()
        headers = {"authorization": f"Bearer {shown['api_key']}", "content-type": "application/json"}
        return f"{url}/v1/chat/completions", lambda: (body, headers), b'"content":"', b"data: [DONE]"
    key = parse_webhook_secret(shown["secret"])

    def signed() -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"query": "hi", "user": "bench", "stream": True}).encode()
        headers = standard_webhook_headers([key], "msg_" + secrets.token_hex(8), int(time.time()), body)
        return body, {**headers, "content-type": "application/json"}

    return url, signed, b"event: delta", b"event: done"


async def sample_rss(pid: int, samples: list[tuple[float, float]]) -> None:
    """(seconds since start, VmRSS MiB) every 50 ms: when in the burst the memory peaks."""
    start = time.perf_counter()
    while True:
        samples.append((time.perf_counter() - start, memory_mib(pid)["VmRSS"]))
        await asyncio.sleep(0.05)


async def wait_file(path: Path) -> None:
    for _ in range(1200):
        if path.exists():
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"the traced gateway wrote no {path}")


def print_trace(prefix: Path, streams: int, frames: int) -> None:
    """The memory the peak holds beyond idle, per stream: by allocation site, then by file."""
    idle = tracemalloc.Snapshot.load(f"{prefix}.idle")
    peak = tracemalloc.Snapshot.load(f"{prefix}.peak")
    by_file = peak.compare_to(idle, "filename")
    total = sum(stat.size_diff for stat in by_file)
    print(f"\n  tracemalloc: {total / 1024 / streams:.1f} KiB per stream of Python allocations at the peak")
    print("  by file (KiB per stream, blocks per stream):")
    for stat in by_file[:40]:
        name = str(stat.traceback[0].filename).split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        print(f"    {stat.size_diff / 1024 / streams:7.2f}  {stat.count_diff / streams:7.1f}  {name}")
    print(f"  by site, {frames} frames (KiB per stream, blocks per stream):")
    for stat in peak.compare_to(idle, "traceback")[:25]:
        print(f"    {stat.size_diff / 1024 / streams:7.2f}  {stat.count_diff / streams:7.1f}")
        for frame in stat.traceback.format(limit=frames, most_recent_first=True)[::2]:
            print("        " + frame.strip().split("site-packages/")[-1].replace(str(ROOT) + "/", ""))


@dataclass
class Soak:
    direct: Burst
    through: Burst
    idle: dict[str, float]  # the gateway's memory (MiB) before the burst
    peak: dict[str, float]  # and after it (VmHWM: its peak)
    cpu: dict[str, float]  # CPU seconds used during the bursts, per process and burst


async def soak(streams: int, surface: str, args: argparse.Namespace) -> Soak:
    trace = args.trace
    with Scratch(f"bench-soak-{streams}-") as scratch:
        sim_port, port = free_port(), free_port()
        simulator = start_simulator(sim_port, "--answer", ANSWER, "--tokens-per-second", str(args.tokens_per_second))
        scratch.keep(simulator)
        extra = dict(item.split("=", 1) for item in args.env)
        env = gateway_env(f"sqlite:///{scratch.dir / f'gw-{streams}.db'}", port, **extra)
        url, shown = await make_endpoint(Settings.from_env(env), surface, sim_port)
        prefix = scratch.dir / f"trace-{streams}"
        command = ["bench/traced_serve.py", str(trace), str(prefix)] if trace else ["-m", "gateway", "serve"]
        server = subprocess.Popen([sys.executable, *command], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        scratch.keep(server)
        wait_up(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        wait_up(f"http://127.0.0.1:{port}/healthz", server)

        direct_body = json.dumps({"query": "hi", "user": "bench", "inputs": {}, "response_mode": "streaming"}).encode()
        direct_headers = {"authorization": "Bearer app-simulator", "content-type": "application/json"}
        sim_cpu = cpu_seconds(simulator.pid)
        direct = await run_burst(
            "simulator direct",
            f"http://127.0.0.1:{sim_port}/v1/chat-messages",
            streams=streams,
            request=lambda: (direct_body, direct_headers),
            first_marker=b'"event": "message"',
            done_marker=b'"event": "message_end"',
        )
        cpu = {"simulator direct": cpu_seconds(simulator.pid) - sim_cpu}
        gw_url, request, first, done = gateway_requests(surface, url, shown)
        await run_burst("warm-up", gw_url, streams=5, request=request, first_marker=first, done_marker=done)
        idle = memory_mib(server.pid)
        if trace:
            server.send_signal(signal.SIGUSR1)
            await wait_file(Path(f"{prefix}.ready"))  # the idle snapshot is taken
        gw_cpu, sim_cpu = cpu_seconds(server.pid), cpu_seconds(simulator.pid)
        spy = Profiler(server.pid, args.profile_seconds, args.profile) if args.profile else None
        samples: list[tuple[float, float]] = []
        sampler = asyncio.ensure_future(sample_rss(server.pid, samples))
        try:
            through = await run_burst(
                f"through {surface}", gw_url, streams=streams, request=request, first_marker=first, done_marker=done
            )
        finally:
            sampler.cancel()
        if samples:
            at, top = max(samples, key=lambda sample: sample[1])
            print(f"  (N = {streams}: gateway RSS highest {top:.0f} MiB at {at:.1f} s into the burst)")
            if args.timeline:  # the RSS each half second: when in the burst the memory grows
                marks = {round(when * 2) / 2: rss for when, rss in samples}
                print("  RSS MiB by second: " + "  ".join(f"{when:g}s {rss:.0f}" for when, rss in marks.items()))
        peak = memory_mib(server.pid)
        cpu["gateway"] = cpu_seconds(server.pid) - gw_cpu
        cpu["simulator through"] = cpu_seconds(simulator.pid) - sim_cpu
        if spy is not None:
            spy.wait()
            print(f"\n  py-spy of the gateway during the burst ({args.profile}), self time:")
            for row in top_self(args.profile, 15):
                print("    " + row)
        if trace:
            server.send_signal(signal.SIGUSR2)
            await wait_file(Path(f"{prefix}.done"))
            print_trace(prefix, streams, trace)
        return Soak(direct, through, idle, peak, cpu)


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    for streams in [int(n) for n in args.streams.split(",")]:
        run = await soak(streams, args.surface, args)
        direct, through, idle, peak = run.direct, run.through, run.idle, run.peak
        print(f"\nN = {streams} concurrent streams, one gateway process, default settings")
        print("  " + direct.row())
        print("  " + through.row())
        ratio50 = percentile(through.ttfts, 0.5) / percentile(direct.ttfts, 0.5)
        ratio99 = percentile(through.ttfts, 0.99) / percentile(direct.ttfts, 0.99)
        print(f"  ttft ratio gateway / direct: p50 {ratio50:.2f}x, p99 {ratio99:.2f}x")
        per_stream = (peak["VmHWM"] - idle["VmRSS"]) * 1024 / streams
        print(
            f"  gateway RSS: idle {idle['VmRSS']:.0f} MiB, peak {peak['VmHWM']:.0f} MiB "
            f"(~{per_stream:.0f} KiB per concurrent stream)"
        )
        gw, sim_direct, sim_through = (
            run.cpu[key] * 1000 / streams for key in ("gateway", "simulator direct", "simulator through")
        )
        print(
            f"  CPU per stream (/proc): gateway {gw:.2f} ms; simulator {sim_direct:.2f} ms direct, "
            f"{sim_through:.2f} ms through"
        )
        rows.append((streams, direct, through, peak["VmHWM"]))
    print(f"\nsummary ({args.surface}): N, completed direct, completed gateway, ttft p50/p99 ms, peak RSS MiB")
    for streams, direct, through, peak_rss in rows:
        print(
            f"  {streams:>5}  {direct.completed:>5}  {through.completed:>5}  "
            f"{percentile(through.ttfts, 0.5):7.1f} / {percentile(through.ttfts, 0.99):7.1f}  {peak_rss:6.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", default="100,500,2000", help="comma-separated N")
    parser.add_argument("--surface", choices=["openai", "webhook"], default="openai")
    parser.add_argument("--trace", type=int, default=0, metavar="FRAMES", help="tracemalloc, FRAMES deep")
    parser.add_argument("--profile", type=Path, help="py-spy the gateway during the burst into this file")
    parser.add_argument("--profile-seconds", type=float, default=10.0, help="how long to sample")
    parser.add_argument("--tokens-per-second", type=float, default=50.0, help="the simulator's pace")
    parser.add_argument("--timeline", action="store_true", help="print the gateway's RSS every half second")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a gateway setting")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
