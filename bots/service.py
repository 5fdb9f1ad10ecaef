"""Discord bots inside `dify-gateway serve`: `GATEWAY_DISCORD_BOT_ENDPOINTS=ep_1,ep_2`.

Registered under the `dify_gateway.services` entry-point group; the gateway's lifespan calls
`discord_bots(host)` and runs what it returns beside the job workers. Each replica runs the
runner; the lease makes exactly one of them hold each bot token's connection. A bot that cannot
start is logged, never fatal to the server. Kept free of discord.py imports until a bot is
configured, so a gateway without bots does not load it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from gateway.host.services import Host

__all__ = ["SETTING", "discord_bots"]

logger = logging.getLogger(__name__)

SETTING = "discord_bot_endpoints"  # GATEWAY_DISCORD_BOT_ENDPOINTS
_MAX_BACKOFF = 300.0


def discord_bots(host: Host) -> Coroutine[Any, Any, None] | None:
    """The bots to run in this server, or None when none are configured."""
    endpoint_ids = [part.strip() for part in host.setting(SETTING).split(",") if part.strip()]
    if not endpoint_ids:
        return None
    return _run_all(host, endpoint_ids)


async def _run_all(host: Host, endpoint_ids: list[str]) -> None:
    async with asyncio.TaskGroup() as group:
        for endpoint_id in dict.fromkeys(endpoint_ids):
            group.create_task(_run_one(host, endpoint_id), name=f"discord-bot-{endpoint_id}")


async def _run_one(host: Host, endpoint_id: str) -> None:
    from bots.errors import BotStartupError
    from bots.runner import run_discord_bot

    backoff = 5.0
    while True:
        try:
            await run_discord_bot(host, endpoint_id)
            return
        except BotStartupError as exc:
            logger.error("the Discord bot of endpoint %s is not running: %s", endpoint_id, exc.message)
            return
        except Exception:  # network trouble at start and the like: try again later
            logger.exception("the Discord bot of endpoint %s failed; retrying in %.0f s", endpoint_id, backoff)
        await host.clock.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF)
