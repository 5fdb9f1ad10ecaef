"""`dify-gateway simulate-dify` and `dify-gateway demo`: try the gateway without a Dify account."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shlex
import socket
import sys
from pathlib import Path

import click
from pydantic import SecretStr

from gateway.cli.common import fail, load_settings
from gateway.host.runtime import open_gateway
from gateway.records.apps import AppIn, AppUpdate
from gateway.records.workspaces import DEFAULT_WORKSPACE
from gateway.simulator.config import FAULTS, SimulatorConfig

__all__ = ["demo", "simulate_dify"]

DEMO_APP = "demo"
SIMULATOR_KEY = "app-simulator"


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
    from gateway.simulator.server import simulator_server  # the simulator is a Starlette app: load it only here

    sock = _listen(port, "--port", host)
    port = sock.getsockname()[1]
    click.echo(f"Dify simulator on http://{host}:{port}/v1 (app key: {sorted(config.api_keys)[0]}, mode {mode})")
    simulator_server(host, port, config).run(sockets=[sock])


def _listen(port: int, flag: str, host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on `host`:`port` (0: any free port), or a one-line error naming `flag`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart at once
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        busy = exc.errno == errno.EADDRINUSE
        why = "is busy (is a gateway or another demo running there?)" if busy else f"cannot be used ({exc.strerror})"
        fail(f"port {port} {why}: choose another with {flag} PORT")
    return sock


@click.command("demo")
@click.option("--port", type=int, default=8000, show_default=True, help="Gateway port (0: any free port)")
@click.option("--simulator-port", type=int, default=5001, show_default=True, help="Simulator port (0: any free port)")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-gateway"))
def demo(port: int, simulator_port: int, workdir: Path) -> None:
    """Start a gateway and a Dify simulator, create a webhook endpoint, and print commands to try."""
    from gateway.http.app import create_app
    from gateway.simulator.server import simulator_server

    # Both ports are taken before anything is printed, and kept: the commands shown work.
    with contextlib.ExitStack() as opened:  # closes the first if the second port is busy
        gateway_socket = opened.enter_context(_listen(port, "--port"))
        simulator_socket = opened.enter_context(_listen(simulator_port, "--simulator-port"))
        opened.pop_all()
    port, simulator_port = gateway_socket.getsockname()[1], simulator_socket.getsockname()[1]
    public_url = f"http://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{(workdir / 'gateway.db').resolve()}"
    settings = load_settings(store=store, public_url=public_url, port=port)
    simulator_base = f"http://127.0.0.1:{simulator_port}/v1"

    async def prepare() -> str:
        gateway = await open_gateway(settings)
        try:
            key = SecretStr(SIMULATOR_KEY)
            if DEMO_APP not in {a.name for a in await gateway.apps.all(DEFAULT_WORKSPACE)}:
                await gateway.apps.add(AppIn(name=DEMO_APP, base_url=simulator_base, api_key=key, mode="chat"))
            else:  # an earlier demo's app: point it at this run's simulator
                await gateway.apps.update(DEMO_APP, AppUpdate(base_url=simulator_base, api_key=key, mode="chat"))
            for record in await gateway.endpoints.all(DEFAULT_WORKSPACE):
                if record.plugin == "webhook" and record.name == DEMO_APP:
                    return record.id
            record, _ = await gateway.endpoints.create("webhook", [DEMO_APP], {}, name=DEMO_APP)
            return record.id
        finally:
            await gateway.aclose()

    endpoint_id = asyncio.run(prepare())
    env = f"GATEWAY_STORE={shlex.quote(store)} GATEWAY_PUBLIC_URL={public_url}"
    me = "dify-gateway" if sys.argv and sys.argv[0].endswith("dify-gateway") else f"{sys.executable} -m gateway"
    click.echo(
        "\n".join(
            [
                f"Gateway on {public_url}, Dify simulator on {simulator_base}.",
                "In another shell, try:",
                f"  {env} {me} webhook call {endpoint_id} --query 'Hello there'",
                f"  {env} {me} webhook call {endpoint_id} --query 'Tell me a story' --stream",
                f"  {env} {me} endpoints requests {endpoint_id}",
                f"  curl -s {public_url}/metrics | head",
                "Press Ctrl+C to stop.",
            ]
        ),
    )

    async def serve() -> None:
        from gateway.http.server import GatewayServer, server_config

        gateway_server = GatewayServer(server_config(create_app(settings), settings, log_level="warning"))
        simulator = simulator_server("127.0.0.1", simulator_port, SimulatorConfig())
        await asyncio.gather(
            gateway_server.serve(sockets=[gateway_socket]), simulator.serve(sockets=[simulator_socket])
        )

    asyncio.run(serve())
