"""Start a real, throw-away `redis-server` for tests.

    with running_redis_server() as url:   # "redis://127.0.0.1:PORT/0"
        ...

The server listens on a loopback port (a lost race for it is detected and retried), keeps its
files in a temporary directory, persists nothing, and is stopped (and the directory removed) when the block exits.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["RedisServerUnavailable", "running_redis_server"]

_START_TIMEOUT_S = 10.0


class RedisServerUnavailable(RuntimeError):
    """redis-server is missing or would not start."""


def _candidate_port() -> int:
    # redis-server cannot listen on port 0 and report it: take a port the kernel just handed out
    # and let `_start` notice when another process got it first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_pid(port: int) -> int | None:
    """The process id of the Redis server answering on `port` (None: none answers yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    log = workdir / "redis.log"
    last_error = ""
    for _ in range(10):
        port = _candidate_port()
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(workdir), "--logfile", str(log)]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_S
        # Ours only when the server answering there is this process: if another one took the port
        # first, this one exits (address in use) or a stranger answers; then try another port.
        while time.monotonic() < deadline and proc.poll() is None:
            pid = _server_pid(port)
            if pid == proc.pid:
                return proc, port
            if pid is not None:
                break
            time.sleep(0.02)
        _stop(proc)
        last_error = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RedisServerUnavailable(f"redis-server did not start within {_START_TIMEOUT_S}s. Log:\n{last_error}")


@contextlib.contextmanager
def running_redis_server() -> Iterator[str]:
    """Run a redis-server for the duration of the block; yields its URL (database 0)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisServerUnavailable(
            "redis-server is not on PATH: install Redis (e.g. `apt-get install redis-server`) "
            "or deselect these tests with `-m 'not redis'`."
        )
    with tempfile.TemporaryDirectory(prefix="dgw-redis-") as tmp:
        proc, port = _start(binary, Path(tmp))
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(proc)
