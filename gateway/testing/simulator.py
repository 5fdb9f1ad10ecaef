"""The Dify simulator on a real uvicorn server in a thread of its own, for any test (sync or
async, whatever its event loop): `with running_simulator(config) as sim: ... sim.base_url`;
`serving(app)` does the same for any ASGI app (a fake platform API)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig

__all__ = ["FAST", "RunningSimulator", "running_simulator", "serving"]

#: A simulator that answers at once (no first-token latency, no token pacing).
FAST = SimulatorConfig(first_token_latency=0, tokens_per_second=0)

_START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A simulated Dify app being served: `base_url` is its Service API root (`.../v1`), what an
    app's `base_url` is set to; `url` the server root (`/_sim/stats`, `/_sim/faults`)."""

    url: str
    config: SimulatorConfig

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def api_key(self) -> str:
        """A key the simulator accepts."""
        return min(self.config.api_keys)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextlib.contextmanager
def running_simulator(config: SimulatorConfig = FAST, *, host: str = "127.0.0.1") -> Iterator[RunningSimulator]:
    """Serve a simulator with `config` on a port the kernel picks; stopped when the block ends."""
    with serving(create_simulator_app(config), host=host, name="dify-simulator") as base_url:
        yield RunningSimulator(base_url, config)


@contextlib.contextmanager
def serving(app: ASGIApp, *, host: str = "127.0.0.1", name: str = "test-server") -> Iterator[str]:
    """Serve an ASGI app (a fake platform API) on a real uvicorn in a thread of its own, on a port
    the kernel picks, for code that runs its own event loop (a CLI command); its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(128)
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the test below, not lost in the thread
            failure.append(exc)
        finally:
            server.ready.set()

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    try:
        if not server.ready.wait(_START_TIMEOUT) or failure or not server.started:
            raise RuntimeError(f"{name} did not start") from (failure[0] if failure else None)
        port = sock.getsockname()[1]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT)
        sock.close()
