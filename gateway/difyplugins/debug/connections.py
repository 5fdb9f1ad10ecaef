"""Which plugins are connected for remote debugging, here or on another replica.

The replica holding a plugin's TCP connection holds a lease on it in the store (a `LeaseLock`
named after the plugin, renewed while the connection lives, released when it ends), whose owner
names the replica's internal address. A request for the plugin is served here when the connection
is here, forwarded to the holder when another replica holds it (`Forwarder`), and answered 503 with
`Retry-After` when nobody does (the developer's process is stopped or restarting).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.difyplugins.debug.forward import Forwarder
from gateway.difyplugins.runtime.connection import PluginConnection
from gateway.exceptions import GatewayError, PluginUnavailable
from gateway.plugin import Request, Response
from gateway.storage.base import Store
from gateway.storage.lock import LeaseLock, new_owner

__all__ = ["DebugConnections", "HeldElsewhere"]

logger = logging.getLogger(__name__)

LEASE_PREFIX = "difydebug:conn:"
RETRY_AFTER = 1.0  # a restarting developer's plugin is back within about a second


class HeldElsewhere(GatewayError):
    """Another replica holds the plugin's debugging connection (and kept it while this one waited)."""


@dataclass(slots=True)
class _Held:
    connection: PluginConnection
    lease: LeaseLock
    close: Callable[[], None]  # closes the TCP connection (a newer one took its place)
    workspace: str


class DebugConnections:
    """The debugging connections of this replica and the leases that tell the others about them.

    `address`: this replica's internal URL (GATEWAY_INTERNAL_URL), recorded in the lease so other
    replicas can forward to it; empty when forwarding is not set up (a single replica)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        forwarder: Forwarder | None,
        address: str,
        lease_ttl: float = 15.0,
        takeover_wait: float = 3.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._forwarder = forwarder
        self._address = address
        self._ttl = lease_ttl
        self._takeover_wait = takeover_wait
        self._held: dict[str, _Held] = {}
        self._elsewhere: dict[str, bool] = {}  # the last lease reads (for listings in other processes)

    def _lease(self, key: str) -> LeaseLock:
        owner = json.dumps({"owner": new_owner(), "address": self._address})
        return LeaseLock(self._store, LEASE_PREFIX + key, ttl=self._ttl, owner=owner)

    @contextlib.asynccontextmanager
    async def attached(
        self, key: str, connection: PluginConnection, *, close: Callable[[], None], workspace: str
    ) -> AsyncIterator[Callable[[], None]]:
        """Hold the plugin's lease while the block runs, and make `connection` the plugin's once the
        block calls the `ready` it is given (after registering the plugin). A connection of the same
        plugin here is closed (the developer restarted it); one on another replica is waited for a
        little (its replica may not have seen it end yet), then `HeldElsewhere`."""
        previous = self._held.get(key)
        if previous is not None:
            previous.close()
        lease = self._lease(key)
        if not await lease.wait(self._clock, timeout=self._takeover_wait):
            raise HeldElsewhere(f"plugin {key} is connected for debugging to another gateway replica")
        held = _Held(connection, lease, close, workspace)

        def ready() -> None:
            self._held[key] = held

        try:
            async with lease.kept(self._clock):
                yield ready
        finally:
            if self._held.get(key) is held:
                del self._held[key]

    def connection(self, key: str) -> PluginConnection:
        """The plugin's connection here; `PluginUnavailable` (503, `Retry-After`) when it is not."""
        held = self._held.get(key)
        if held is None:
            raise PluginUnavailable(
                f"plugin {key} is not connected: it runs on its developer's machine (remote debugging)",
                retry_after=RETRY_AFTER,
            )
        return held.connection

    async def connect(self, key: str) -> PluginConnection:
        return self.connection(key)

    async def holder(self, key: str) -> str | None:
        """The internal address of the replica holding the plugin's connection ("" if it has none),
        or None when no replica does."""
        raw = await self._store.kv_get(LEASE_PREFIX + key)
        if raw is None:
            return None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            return str(json.loads(raw).get("address") or "")
        return ""

    async def forward(self, key: str, request: Request) -> Response | None:
        """None when the plugin is connected here (serve it here); else the holder's answer."""
        if key in self._held:
            return None
        address = await self.holder(key)
        if key in self._held:  # connected meanwhile
            return None
        self._elsewhere[key] = address is not None
        if address is None:
            raise PluginUnavailable(
                f"plugin {key} is not connected: it runs on its developer's machine (remote debugging)",
                retry_after=RETRY_AFTER,
            )
        if not address or self._forwarder is None or address == self._address:
            raise PluginUnavailable(
                f"plugin {key} is connected to another replica, which has no GATEWAY_INTERNAL_URL to forward to",
                retry_after=RETRY_AFTER,
            )
        return await self._forwarder(address, key, request)

    def state(self, key: str) -> str:
        """`connected` (here or on another replica, as last read) or `disconnected`."""
        return "connected" if key in self._held or self._elsewhere.get(key) else "disconnected"

    async def refresh(self, keys: Iterable[str]) -> None:
        """Read who holds each plugin's lease (for `state` in a process that holds none: the CLI)."""
        for key in keys:
            self._elsewhere[key] = await self._store.kv_get(LEASE_PREFIX + key) is not None

    def drop(self, key: str) -> None:
        """The plugin was removed: close its connection here."""
        held = self._held.get(key)
        if held is not None:
            held.close()

    def close_all(self) -> None:
        """The gateway is stopping: close every debugging connection (their leases are released
        as their connections end)."""
        for held in list(self._held.values()):
            held.close()
