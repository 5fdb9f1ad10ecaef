"""A Dify Service API simulator (never a "mock"): scripted answers, real SSE pacing, faults.

Use `create_simulator_app(SimulatorConfig(...))` in-process (httpx.ASGITransport) or
`run_simulator(host, port, config)` on a real uvicorn server. Faults are chosen per request with
a `[[fault:NAME]]` marker in the query (names in `FAULTS`) or by config / `POST /_sim/faults`.
"""

from __future__ import annotations

from gateway.simulator.app import create_simulator_app as create_simulator_app
from gateway.simulator.config import FAULTS as FAULTS, SimulatorConfig as SimulatorConfig
from gateway.simulator.server import run_simulator as run_simulator, simulator_server as simulator_server
from gateway.simulator.state import SimulatorState as SimulatorState
