"""`dify-gateway bot ...`: run chat bots on the platforms' own connections.

Registered through the `dify_gateway.commands` entry-point group (the gateway never imports `bots`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

import click

from bots.errors import BotStartupError
from bots.runner import DEFAULT_LEASE_TTL, run_discord_bot
from gateway.cli.common import fail, load_settings, service_host
from gateway.logs import configure_logging
from gateway.plugin import GatewayError

__all__ = ["bot", "run_until_stopped"]


def run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` until it ends or SIGTERM / SIGINT arrives; a signal cancels it, so its cleanup
    (releasing the lease, closing the Discord connection) runs before the process exits."""

    async def runner() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        await asyncio.wait({task})
        if not task.cancelled():  # cancelled: stopped by a signal, after cleaning up
            task.result()

    asyncio.run(runner())


@click.group("bot")
def bot() -> None:
    """Chat bots connected to the platforms' gateways (Discord)."""


@bot.command("discord")
@click.option("--endpoint", "endpoint_id", required=True, help="The discord endpoint: its bot_token and apps")
@click.option(
    "--lease-ttl",
    type=float,
    default=DEFAULT_LEASE_TTL,
    show_default=True,
    help="Seconds after which another replica takes over the connection of one that died",
)
def discord_command(endpoint_id: str, lease_ttl: float) -> None:
    """Run the Discord gateway bot of an endpoint.

    It answers direct messages, mentions (in a new thread) and messages in threads it started,
    with the same conversations as the endpoint's /ask. Run it on several replicas sharing one
    Redis: one holds the Discord connection, the others wait and take over if it dies.
    """
    if lease_ttl <= 0:
        fail("--lease-ttl must be positive")
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> None:
        async with service_host(settings) as host:
            await run_discord_bot(host, endpoint_id, lease_ttl=lease_ttl)

    try:
        run_until_stopped(main())
    except (BotStartupError, GatewayError) as exc:
        fail(exc.message)
