"""`dify-gateway simulate-dify` and `dify-gateway demo`: try the gateway without a Dify account."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

import click
from pydantic import SecretStr

from gateway.apps import AppIn
from gateway.cli.common import load_settings
from gateway.runtime import Gateway
from gateway.simulator.config import FAULTS, SimulatorConfig

__all__ = ["demo", "simulate_dify"]


@click.command("simulate-dify")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5001, show_default=True)
@click.option(
    "--mode",
    type=click.Choice(["chat", "agent-chat", "agent", "advanced-chat", "completion", "workflow"]),
    default="chat",
    show_default=True,
)
@click.option("--answer", default="echo", show_default=True, help="'echo' (You said: …) or a fixed answer")
@click.option("--api-key", "api_keys", multiple=True, help="Accepted app keys (default app-simulator)")
@click.option("--first-token-latency", type=float, default=0.2, show_default=True)
@click.option("--tokens-per-second", type=float, default=50.0, show_default=True, help="0: no pacing")
@click.option("--ping-interval", type=float, default=10.0, show_default=True)
@click.option("--fault", type=click.Choice(sorted(FAULTS)), default=None, help="Inject a fault into answers")
@click.option("--fault-rate", type=float, default=1.0, show_default=True, help="Share of answers that get --fault")
def simulate_dify(
    host: str,
    port: int,
    mode: str,
    answer: str,
    api_keys: tuple[str, ...],
    first_token_latency: float,
    tokens_per_second: float,
    ping_interval: float,
    fault: str | None,
    fault_rate: float,
) -> None:
    """Serve a Dify simulator (the Service API subset the gateway uses) for demos and tests.

    Put [[fault:NAME]] in a query to inject a fault into that answer only.
    """
    config = SimulatorConfig(
        api_keys=frozenset(api_keys or ("app-simulator",)),
        mode=mode,  # type: ignore[arg-type]
        answer=answer,
        first_token_latency=first_token_latency,
        tokens_per_second=tokens_per_second,
        ping_interval=ping_interval,
        fault=fault,
        fault_rate=fault_rate,
    )
    from gateway.simulator.server import run_simulator  # the simulator is a Starlette app: load it only here

    click.echo(f"Dify simulator on http://{host}:{port}/v1 (app key: {sorted(config.api_keys)[0]}, mode {mode})")
    run_simulator(host, port, config)


@click.command("demo")
@click.option("--port", type=int, default=8000, show_default=True, help="Gateway port")
@click.option("--simulator-port", type=int, default=5001, show_default=True)
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-gateway"))
def demo(port: int, simulator_port: int, workdir: Path) -> None:
    """Start a gateway and a Dify simulator, create a webhook endpoint, and print commands to try."""
    from gateway.app import create_app
    from gateway.simulator.server import simulator_server

    workdir.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{(workdir / 'gateway.db').resolve()}"
    settings = load_settings(store=store, public_url=f"http://127.0.0.1:{port}", port=port)
    simulator_base = f"http://127.0.0.1:{simulator_port}/v1"

    async def prepare() -> str:
        gateway = await Gateway.open(settings)
        try:
            if "demo" not in {a.name for a in await gateway.apps.all()}:
                key = SecretStr("app-simulator")
                await gateway.apps.add(AppIn(name="demo", base_url=simulator_base, api_key=key, mode="chat"))
            for record in await gateway.endpoints.all():
                if record.plugin == "webhook" and record.name == "demo":
                    return record.id
            record, _ = await gateway.endpoints.create("webhook", ["demo"], {}, name="demo")
            return record.id
        finally:
            await gateway.aclose()

    endpoint_id = asyncio.run(prepare())
    env = f"GATEWAY_STORE={shlex.quote(store)} GATEWAY_PUBLIC_URL=http://127.0.0.1:{port}"
    me = "dify-gateway" if sys.argv and sys.argv[0].endswith("dify-gateway") else f"{sys.executable} -m gateway"
    click.echo(
        "\n".join(
            [
                f"Gateway on http://127.0.0.1:{port}, Dify simulator on {simulator_base}.",
                "In another shell, try:",
                f"  {env} {me} webhook call {endpoint_id} --query 'Hello there'",
                f"  {env} {me} webhook call {endpoint_id} --query 'Tell me a story' --stream",
                f"  {env} {me} endpoints requests {endpoint_id}",
                f"  curl -s http://127.0.0.1:{port}/metrics | head",
                "Press Ctrl+C to stop.",
            ]
        ),
    )

    async def serve() -> None:
        import uvicorn

        gateway_server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)
        )
        simulator = simulator_server("127.0.0.1", simulator_port, SimulatorConfig())
        await asyncio.gather(gateway_server.serve(), simulator.serve())

    asyncio.run(serve())
