"""`PluginDebugging`: remote debugging of Dify plugins in one gateway process — the keys, the
connections (and their leases), the listener the gateway's lifespan starts, and what registers a
connected plugin: an installation of origin `remote-debug` in the shared installation records, so
`endpoints create --plugin author/name` and `plugins list` treat it like an installed package."""

from __future__ import annotations

import dataclasses

from gateway.clock import Clock
from gateway.difyplugins.debug.connections import DebugConnections
from gateway.difyplugins.debug.forward import ForwardAuth
from gateway.difyplugins.debug.keys import DebugKeys
from gateway.difyplugins.debug.listener import DebugListener, ListenerPolicy
from gateway.difyplugins.installs import DifyPlugins
from gateway.difyplugins.runtime.manager import DifyRuntime
from gateway.difyplugins.runtime.spec import spec_of
from gateway.records.installations import Installation
from gateway.security.ratelimit import RateLimiter

__all__ = ["PluginDebugging"]


class PluginDebugging:
    def __init__(
        self,
        *,
        keys: DebugKeys,
        connections: DebugConnections,
        plugins: DifyPlugins,
        runtime: DifyRuntime,
        limiter: RateLimiter,
        clock: Clock,
        policy: ListenerPolicy,
        auth: ForwardAuth,
    ) -> None:
        self.keys = keys
        self.auth = auth  # checks hops forwarded to this replica (gateway/http/debugforward.py)
        self.connections = connections
        self._plugins = plugins
        self._runtime = runtime
        self._clock = clock
        self.listener = DebugListener(
            keys=keys, connections=connections, admit=self.admit, limiter=limiter, clock=clock, policy=policy
        )

    async def admit(self, installation: Installation) -> Installation:
        """Record and register a connected plugin (a `GatewayError` refuses it)."""
        previous = await self._plugins.records.get(installation.key)
        if previous is not None:
            installation = dataclasses.replace(installation, installed_at=previous.installed_at)
        recorded = await self._plugins.record_remote(installation)
        self._runtime.register(spec_of(recorded), recorded=True)
        return recorded

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        return await self.listener.start(host, port)

    async def aclose(self) -> None:
        await self.listener.aclose()
