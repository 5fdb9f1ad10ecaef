"""Starting and stopping the servers a benchmark measures (each in its own process)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "bench-admin-" + "x" * 32
SECRET = "bench-secret-" + "y" * 40


def free_port() -> int:
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
    if proc.poll() is not None:
        return
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


def start_simulator(port: int, *options: str) -> subprocess.Popen[bytes]:
    """`dify-gateway simulate-dify --port PORT OPTIONS...` in its own process, quiet; not waited for
    (`wait_up(f"http://127.0.0.1:{port}/_sim/stats", proc)` when it must be up)."""
    command = [sys.executable, "-m", "gateway", "simulate-dify", "--port", str(port), *options]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def gateway_env(store: str, port: int, **extra: str) -> dict[str, str]:
    """Environment for a `dify-gateway serve` process under load (no rate limit, quiet logs)."""
    import os

    return {
        **os.environ,
        "GATEWAY_STORE": store,
        "GATEWAY_ADMIN_TOKEN": ADMIN,
        "GATEWAY_SECRET_KEY": SECRET,
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_PORT": str(port),
        "GATEWAY_RATE_LIMIT_PER_MINUTE": "0",
        "GATEWAY_LOG_LEVEL": "warning",
        **extra,
    }
