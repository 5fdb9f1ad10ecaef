"""Running a bot: one Discord connection per bot token across replicas, held under a lease.

    await run_discord_bot(host, "ep_...")

`LeasedRunner` waits until it holds the token's lease (polling while another replica holds it),
runs the connection while renewing the lease, and releases the lease when it stops. If renewing
fails for longer than the lease's TTL (or another replica holds it now) the connection is closed
and the runner waits again. The connection is an injected `connect` callable and time the
gateway's injected clock, so the lease logic is testable without Discord or waiting. The gateway is
seen only through its service `Host` (gateway/host/services.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

import discord

from bots.errors import BotStartupError, startup_error
from bots.lease import ConnectionLease, lease_key
from gateway.host.services import Host
from gateway.plugin import Clock, Context, NotFound

__all__ = ["Connector", "EndpointContexts", "LeasedRunner", "bot_token_of", "connect_discord", "run_discord_bot"]

logger = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = 30.0
Connector = Callable[[Host, str, str], Awaitable[None]]


class LeasedRunner:
    """Keeps `connect()` running only while this process holds `lease`.

    Args:
        lease: the lease to hold.
        connect: runs the connection until it ends (or is cancelled).
        clock: the gateway's clock: polls, renewals and the TTL are counted on it.
        poll: seconds between attempts to take the lease while another replica holds it.
        renew_every: seconds between renewals (default a third of the TTL).
    """

    def __init__(
        self,
        lease: ConnectionLease,
        connect: Callable[[], Awaitable[None]],
        *,
        clock: Clock,
        poll: float | None = None,
        renew_every: float | None = None,
    ) -> None:
        self.lease = lease
        self._connect = connect
        self._clock = clock
        self.poll = poll if poll is not None else lease.ttl / 3
        self.renew_every = renew_every if renew_every is not None else lease.ttl / 3

    async def run(self) -> None:
        """Return when the connection ends by itself; raise what it raised."""
        waiting_logged = False
        while True:
            if await self._acquire():
                logger.info("holding the lease %s as %s: connecting", self.lease.key, self.lease.owner)
                waiting_logged = False
                try:
                    if await self._hold():
                        return
                finally:
                    # Shielded: even when cancelled (shutdown), hand the lease on at once.
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self.lease.release())
                logger.warning("lost the lease %s: disconnected, waiting to take it again", self.lease.key)
            elif not waiting_logged:
                logger.info("another replica holds the lease %s: waiting", self.lease.key)
                waiting_logged = True
            await self._clock.sleep(self.poll)

    async def _acquire(self) -> bool:
        try:
            return await self.lease.acquire()
        except Exception:  # the store may be briefly unreachable: try again at the next poll
            logger.exception("taking the lease %s failed", self.lease.key)
            return False

    async def _hold(self) -> bool:
        """Run the connection while renewing; True when it ended by itself, False when the lease was lost."""
        connection = asyncio.ensure_future(self._connect())
        renewing = asyncio.ensure_future(self._renew_until_lost())
        try:
            await asyncio.wait({connection, renewing}, return_when=asyncio.FIRST_COMPLETED)
            if connection.done():
                connection.result()  # re-raises the connection's failure
                return True
            return False
        finally:
            for task in (renewing, connection):
                if not task.done():
                    task.cancel()
                    # wait() rather than `await task`: a cancellation of this task must not be swallowed.
                    await asyncio.wait({task})
            if connection.done() and not connection.cancelled():
                connection.exception()  # retrieved, so asyncio does not log it as never retrieved

    async def _renew_until_lost(self) -> None:
        """Renew the lease every `renew_every`; return once it is (or may be) another replica's."""
        renewed = self._clock.monotonic()
        while True:
            await self._clock.sleep(self.renew_every)
            try:
                if not await self.lease.renew():
                    return
                renewed = self._clock.monotonic()
            except Exception:
                logger.exception("renewing the lease %s failed", self.lease.key)
                if self._clock.monotonic() - renewed >= self.lease.ttl:  # it has lapsed: someone else may hold it
                    return


class EndpointContexts:
    """The plugin context of one endpoint, built fresh per message (settings and apps may change)."""

    def __init__(self, host: Host, endpoint_id: str) -> None:
        self._host = host
        self._endpoint_id = endpoint_id

    async def __call__(self) -> Context | None:
        """None while the endpoint is disabled."""
        return await self._host.context(self._endpoint_id)


async def bot_token_of(host: Host, endpoint_id: str) -> str:
    """The bot token of a `discord` endpoint; `BotStartupError` saying what is missing otherwise."""
    try:
        endpoint = await host.endpoint(endpoint_id)
    except NotFound:
        raise BotStartupError(f"no endpoint {endpoint_id!r} (see: dify-gateway endpoints list)") from None
    if endpoint.plugin != "discord":
        raise BotStartupError(f"endpoint {endpoint_id} is a {endpoint.plugin!r} endpoint, not a discord one")
    token = getattr(endpoint.settings, "bot_token", None)
    if token is None or not token.get_secret_value().strip():
        raise BotStartupError(
            f"endpoint {endpoint_id} has no bot_token (Developer Portal → Bot → Reset Token), set it with: "
            f"dify-gateway endpoints update {endpoint_id} --set bot_token=TOKEN"
        )
    return str(token.get_secret_value().strip())


async def connect_discord(host: Host, endpoint_id: str, token: str) -> None:
    """Connect the gateway bot for `endpoint_id` and run until closed."""
    from bots.bot import GatewayBot

    bot = GatewayBot(contexts=EndpointContexts(host, endpoint_id), clock=host.clock)
    try:
        async with bot:
            await bot.start(token)
    except (discord.LoginFailure, discord.PrivilegedIntentsRequired) as exc:
        error = startup_error(exc, endpoint_id)
        assert error is not None
        raise error from None


async def run_discord_bot(
    host: Host,
    endpoint_id: str,
    *,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    poll: float | None = None,
    connector: Connector = connect_discord,
) -> None:
    """Run the Discord bot of an endpoint, on whichever replica holds its token's lease."""
    token = await bot_token_of(host, endpoint_id)
    lease = ConnectionLease(host.store, lease_key("discord", token), ttl=lease_ttl)
    connect = functools.partial(connector, host, endpoint_id, token)
    await LeasedRunner(lease, connect, clock=host.clock, poll=poll).run()
