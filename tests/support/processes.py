"""Real gateway processes for crash and replica tests: start one, wait until it serves, stop it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from tests.support.gateway import ADMIN_TOKEN, SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]


def gateway_env(**values: str) -> dict[str, str]:
    """This environment without the developer's GATEWAY_* variables, plus test secrets and `values`."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_LOG_LEVEL": "warning",
        **values,
    }


def crash_test_env(store: str, public_url: str) -> dict[str, str]:
    """The environment of gateway processes a crash test kills and restarts: short leases and polls,
    so the job a killed process held is taken over within a second or two."""
    return gateway_env(
        GATEWAY_STORE=store, GATEWAY_JOB_LEASE="1.0", GATEWAY_JOB_POLL_INTERVAL="0.1", GATEWAY_PUBLIC_URL=public_url
    )


def start_gateway(
    env: dict[str, str], sock: socket.socket, module: str = "gateway", output: BinaryIO | None = None
) -> subprocess.Popen[bytes]:
    """`python -m gateway serve` (or another module's `main`) serving on the listening socket `sock`.

    The child inherits the socket (`--fd`): the port was bound by the parent, so there is no window
    in which another process could take it, and a second process can take over the same port.
    Its stderr is a pipe (read when it fails to start), or with `output` both streams go there.
    """
    fd = sock.fileno()
    command = [sys.executable, "-m", module, *(["serve"] if module == "gateway" else []), "--fd", str(fd)]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        pass_fds=(fd,),
        stdout=output or subprocess.DEVNULL,
        stderr=output or subprocess.PIPE,
    )


async def wait_healthy(client: httpx.AsyncClient, base: str, proc: subprocess.Popen[bytes]) -> None:
    """Until `base/healthz` answers; fails with the process's stderr if it exits first."""
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if (await client.get(f"{base}/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("gateway did not start")


async def kill_once_generating(client: httpx.AsyncClient, simulator: str, proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL `proc` once the simulator has started an answer (the job is between ack and answer)."""
    for _ in range(200):
        if (await client.get(f"{simulator}/_sim/stats")).json()["generation_requests"] >= 1:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the simulator never started an answer")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen[Any] | None) -> None:
    """SIGTERM, and the process must be gone within 15 s (uvicorn's 10 s of graceful shutdown, then
    the lifespan's); else it is killed and the test fails: a stop that hangs is a bug."""
    if proc is None:
        return
    try:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"process {proc.pid} did not stop within 15 s of SIGTERM") from None
    finally:
        if proc.stderr:
            proc.stderr.close()
