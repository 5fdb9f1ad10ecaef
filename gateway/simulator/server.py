"""Run the Dify simulator on a real server (uvicorn)."""

from __future__ import annotations

import uvicorn

from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig

__all__ = ["run_simulator", "simulator_server"]


def simulator_server(host: str, port: int, config: SimulatorConfig | None = None) -> uvicorn.Server:
    """A configured (not yet started) uvicorn server for the simulator; `serve()` it in a task."""
    app = create_simulator_app(config or SimulatorConfig())
    uv_config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
    return uvicorn.Server(uv_config)


def run_simulator(host: str = "127.0.0.1", port: int = 5001, config: SimulatorConfig | None = None) -> None:
    """Serve the simulator until interrupted (blocking). `dify-gateway simulate-dify` calls this."""
    simulator_server(host, port, config).run()
