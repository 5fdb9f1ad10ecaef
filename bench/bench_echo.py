"""Benchmark: the echo endpoint vs a bare Starlette app answering 200, in the same run.

    python bench/bench_echo.py [--store sqlite|redis] [--duration 10] [--concurrency 50] [--rounds 3]

Both servers run as separate uvicorn processes (one at a time) and the load comes from this
process over loopback with 50 concurrent keep-alive connections.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import ratio_line, rounds_summary, run_load  # noqa: E402
from bench.servers import free_port, gateway_env, start_redis, stop, wait_up  # noqa: E402
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

    workdir = Path(tempfile.mkdtemp(prefix="bench-echo-"))
    extra: list[subprocess.Popen[bytes]] = []
    try:
        store = f"sqlite:///{workdir / 'gw.db'}"
        if args.store == "redis":
            redis_proc, store = start_redis(workdir)
            extra.append(redis_proc)
        port, base_port = free_port(), free_port()
        env = gateway_env(store, port)
        settings = Settings.from_env(env)
        url = asyncio.run(make_endpoint(settings))

        baseline = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_app.py"), str(base_port)])
        extra.append(baseline)  # stopped below even if the gateway doesn't start
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        extra.append(gateway)
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
    finally:
        for proc in extra:
            if proc.poll() is None:
                stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
