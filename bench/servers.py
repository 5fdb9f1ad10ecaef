"""Starting and stopping the servers a benchmark measures (each in its own process)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

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


class Scratch:
    """A benchmark's scratch space: a temporary directory (`dir`) and the processes started for it.

        with Scratch("bench-slack-") as scratch:
            store = scratch.redis()  # a redis-server with its files in `scratch.dir`
            gateway = scratch.keep(subprocess.Popen([...], env=env))

    However the benchmark ends, every process kept is stopped on the way out (`stop`, the last
    started first, so a gateway goes before the Redis it writes to) and the directory is removed.
    """

    def __init__(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self._procs: list[subprocess.Popen[bytes]] = []

    def keep(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """Stop `proc` on the way out (if it is still running then); returns it."""
        self._procs.append(proc)
        return proc

    def redis(self) -> str:
        """Start a redis-server kept here (`start_redis`); its URL."""
        proc, url = start_redis(self.dir)
        self.keep(proc)
        return url

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            for proc in reversed(self._procs):
                stop(proc)
        finally:  # a stop interrupted (a second Ctrl-C in its wait): whatever still runs is killed at once
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()
            shutil.rmtree(self.dir, ignore_errors=True)


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
