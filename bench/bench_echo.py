"""Benchmark: the echo endpoint vs a bare Starlette app answering 200, in the same run.

    python bench/bench_echo.py [--store sqlite|redis] [--duration 10] [--concurrency 50]

Both servers run as separate uvicorn processes (one at a time) and the load comes from this
process over loopback with 50 concurrent keep-alive connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import ratio_line, run_load  # noqa: E402
from gateway.runtime import Gateway  # noqa: E402
from gateway.settings import Settings  # noqa: E402

ADMIN = "bench-admin-" + "x" * 32
SECRET = "bench-secret-" + "y" * 40


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"server exited early: {url}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"server did not come up: {url}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    return proc, f"redis://127.0.0.1:{port}/0"


async def make_endpoint(settings: Settings) -> str:
    gateway = await Gateway.open(settings)
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
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-echo-"))
    extra: list[subprocess.Popen[bytes]] = []
    try:
        store = f"sqlite:///{workdir / 'gw.db'}"
        if args.store == "redis":
            redis_proc, store = start_redis(workdir)
            extra.append(redis_proc)
        port, base_port = free_port(), free_port()
        env = {
            **os.environ,
            "GATEWAY_STORE": store,
            "GATEWAY_ADMIN_TOKEN": ADMIN,
            "GATEWAY_SECRET_KEY": SECRET,
            "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_PORT": str(port),
            "GATEWAY_RATE_LIMIT_PER_MINUTE": "0",
            "GATEWAY_LOG_LEVEL": "warning",
        }
        settings = Settings.from_env(env)
        url = asyncio.run(make_endpoint(settings))

        baseline = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_app.py"), str(base_port)])
        wait_up(f"http://127.0.0.1:{base_port}/", baseline)
        base = asyncio.run(
            run_load(
                "bare starlette 200",
                f"http://127.0.0.1:{base_port}/x",
                concurrency=args.concurrency,
                duration=args.duration,
            )
        )
        stop(baseline)

        gateway = subprocess.Popen(
            [shutil.which("dify-gateway") or "dify-gateway", "serve"], env=env, stdout=subprocess.DEVNULL
        )
        extra.append(gateway)
        wait_up(f"http://127.0.0.1:{port}/healthz", gateway)
        echo = asyncio.run(
            run_load(
                f"echo endpoint ({args.store})", url + "/bench", concurrency=args.concurrency, duration=args.duration
            )
        )
        stop(gateway)

        print(f"\n{args.concurrency} concurrent connections, {args.duration:.0f} s each, loopback")
        print(base.row())
        print(echo.row())
        print(ratio_line(echo, base))
    finally:
        for proc in extra:
            if proc.poll() is None:
                stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
