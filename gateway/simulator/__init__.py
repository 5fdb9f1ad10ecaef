"""A Dify Service API simulator (never a "mock"): scripted answers, real SSE pacing, faults.

Use `create_simulator_app(SimulatorConfig(...))` in-process (httpx.ASGITransport) or
`run_simulator(host, port, config)` on a real uvicorn server. Faults are chosen per request with
a `[[fault:NAME]]` marker in the query (names in `FAULTS`) or by config / `POST /_sim/faults`.

Import from the submodules (`gateway.simulator.app`, `.config`, `.server`): this package's own
import loads nothing, so the CLI can read the config without loading Starlette.
"""
