"""Benchmark: the echo endpoint vs a bare Starlette app answering 200, in the same run.

    python bench/bench_echo.py [--store sqlite|redis] [--duration 10] [--concurrency 50] [--rounds 3]

Both servers run as separate uvicorn processes (one at a time) and the load comes from this
process over loopback with 50 concurrent keep-alive connections.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import ratio_line, rounds_summary, run_load  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, wait_up  # noqa: E402
from gateway.host.runtime import open_gateway  # noqa: E402
from gateway.settings import Settings  # noqa: E402


async def make_endpoint(settings: Settings) -> str:
    gateway = await open_gateway(settings)
    try:
        _, url = await gateway.endpoints.create("echo", [], {})
        return url
    finally:
        await gateway.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="alternating baseline/echo runs (median, min-max)")
    args = parser.parse_args()

    with Scratch("bench-echo-") as scratch:
        store = f"sqlite:///{scratch.dir / 'gw.db'}"
        if args.store == "redis":
            store = scratch.redis()
        port, base_port = free_port(), free_port()
        env = gateway_env(store, port)
        settings = Settings.from_env(env)
        url = asyncio.run(make_endpoint(settings))

        baseline = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_app.py"), str(base_port)])
        scratch.keep(baseline)  # stopped on the way out, even if the gateway does not start
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        scratch.keep(gateway)
        wait_up(f"http://127.0.0.1:{base_port}/", baseline)
        wait_up(f"http://127.0.0.1:{port}/healthz", gateway)
        load = {"concurrency": args.concurrency, "duration": args.duration}
        pairs = []
        for i in range(args.rounds):  # alternating, so a change in the machine's load hits both alike
            base = asyncio.run(run_load("bare starlette 200", f"http://127.0.0.1:{base_port}/x", **load))
            echo = asyncio.run(run_load(f"echo endpoint ({args.store})", url + "/bench", **load))
            pairs.append((echo, base))
            print(f"\nround {i + 1}: {args.concurrency} concurrent connections, {args.duration:.0f} s each, loopback")
            print(base.row())
            print(echo.row())
            print(ratio_line(echo, base), flush=True)
        print()
        print(*rounds_summary(pairs), sep="\n")


if __name__ == "__main__":
    main()
