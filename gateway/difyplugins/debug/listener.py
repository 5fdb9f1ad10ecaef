"""The remote-debugging listener: a TCP server a developer's plugin connects to (`REMOTE_INSTALL_URL`).

One connection, in order (dify-plugins.md §4, the daemon's `debugging_runtime`):

1. the handshake `{"type": "handshake", "data": {"key": ...}}` within `handshake_timeout`; a wrong
   key gets `handshake failed, invalid key` and the connection is closed. Failed handshakes are
   counted per peer address (the shared `RateLimiter`): past `attempts_per_minute` a peer is
   refused before its handshake is read;
2. the declarations, up to `end`, which register the plugin (`admit`);
3. the session protocol, both ways, over the same `PluginConnection` a local plugin's stdio uses;
   a connection silent for `heartbeat_timeout` (the SDK sends heartbeats) is closed.

Errors are written to the plugin as one line of text before closing, as the daemon does: the SDK
logs them on the developer's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.difyplugins.debug.connections import DebugConnections
from gateway.difyplugins.debug.declarations import Declarations
from gateway.difyplugins.debug.keys import DebugKeys
from gateway.difyplugins.runtime.connection import PluginConnection
from gateway.difyplugins.runtime.protocol import decode_line
from gateway.difyplugins.runtime.transport import LineTooLong, line_writer, read_lines
from gateway.exceptions import GatewayError, RateLimited
from gateway.records.installations import Installation
from gateway.security.ratelimit import RateLimiter

__all__ = ["DebugListener", "ListenerPolicy"]

logger = logging.getLogger(__name__)

HANDSHAKE_LINE = 64 * 1024  # a handshake is a few dozen bytes
STOP_GRACE = 2.0  # seconds closed connections get to end (and release their leases) at shutdown
DECLARATION_LINE = 16 * 1024 * 1024  # a manifest, the endpoint declarations, 8 KiB asset chunks

# Called once the connection holds the plugin, with the installation its declarations make:
# records and registers it (or raises a GatewayError whose message goes back to the plugin).
Admit = Callable[[Installation], Awaitable[Installation]]


class _Refused(Exception):
    """End the connection, telling the plugin why (one line)."""


@dataclass(frozen=True, slots=True)
class ListenerPolicy:
    handshake_timeout: float = 10.0
    declarations_timeout: float = 30.0
    heartbeat_timeout: float = 60.0
    attempts_per_minute: int = 10  # failed handshakes per peer address


class DebugListener:
    def __init__(
        self,
        *,
        keys: DebugKeys,
        connections: DebugConnections,
        admit: Admit,
        limiter: RateLimiter,
        clock: Clock,
        policy: ListenerPolicy,
    ) -> None:
        self._keys = keys
        self._connections = connections
        self._admit = admit
        self._limiter = limiter
        self._clock = clock
        self._policy = policy
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on `host:port` (port 0: any free one); the address bound."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=HANDSHAKE_LINE)
        bound = self._server.sockets[0].getsockname()
        self.address = (str(bound[0]), int(bound[1]))
        logger.info("listening for Dify plugin debugging connections on %s:%d", *self.address)
        return self.address

    async def aclose(self) -> None:
        """Stop listening and close every connection (the gateway is stopping)."""
        if self._server is not None:
            self._server.close()
        self._connections.close_all()
        if self._tasks:  # closed connections end on their own, releasing their leases at once
            await asyncio.wait(list(self._tasks), timeout=STOP_GRACE)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        where = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        try:
            await self._serve(reader, writer, where)
        except _Refused as exc:
            with contextlib.suppress(Exception):
                writer.write(str(exc).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            logger.exception("a Dify plugin debugging connection from %s failed", where)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        scope = f"difydebug:{peer}"
        try:
            await self._limiter.check(scope, self._policy.attempts_per_minute)
        except RateLimited:
            logger.warning("debugging connection from %s refused: too many failed handshakes", peer)
            raise _Refused("handshake failed, too many attempts; try again later") from None
        lines = read_lines(reader, max_line=DECLARATION_LINE)
        workspace = await self._handshake(lines, scope, peer)
        declarations = await self._declarations(lines)
        try:
            installation = declarations.installation(workspace=workspace, now=self._clock.time())
        except GatewayError as exc:
            raise _Refused(f"register failed: {exc.message}") from None
        key = installation.key
        plugin_log = logging.getLogger(f"gateway.plugins.{key}")
        connection = PluginConnection(key, line_writer(writer, name=key, retry_after=1.0), plugin_log)
        try:
            # The connection first (refused while another replica holds the plugin), then the record.
            async with self._connections.attached(key, connection, close=writer.close, workspace=workspace) as ready:
                installation = await self._admit(installation)
                ready()
                logger.info("Dify plugin %s connected for debugging from %s", installation.identity, peer)
                reason = await self._pump(lines, connection)
        except GatewayError as exc:
            logger.warning("a debugging plugin from %s was refused: %s", peer, exc.message)
            raise _Refused(f"register failed: {exc.message}") from None
        finally:
            connection.lost("its debugging connection ended", retry_after=1.0)
        logger.info("Dify plugin %s disconnected (%s)", key, reason)

    async def _handshake(self, lines: AsyncIterator[bytes], scope: str, peer: str) -> str:
        try:
            async with asyncio.timeout(self._policy.handshake_timeout):
                line = await anext(lines, b"")
        except TimeoutError:
            raise _Refused("handshake failed, no handshake in time") from None
        except LineTooLong:
            raise _Refused("handshake failed, invalid handshake message") from None
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        data = message.get("data") if isinstance(message, dict) and message.get("type") == "handshake" else None
        key = data.get("key") if isinstance(data, dict) else None
        if not isinstance(key, str):
            await self._limiter.count(scope)
            raise _Refused("handshake failed, invalid handshake message")
        workspace = await self._keys.workspace_of(key)
        if workspace is None:
            await self._limiter.count(scope)
            logger.warning("debugging connection from %s refused: invalid key", peer)
            raise _Refused("handshake failed, invalid key")
        return workspace

    async def _declarations(self, lines: AsyncIterator[bytes]) -> Declarations:
        declarations = Declarations()
        try:
            async with asyncio.timeout(self._policy.declarations_timeout):
                async for line in lines:
                    if not line.strip():
                        continue
                    try:
                        message = json.loads(line)
                    except ValueError:
                        raise _Refused("register failed, a declaration is not JSON") from None
                    try:
                        if declarations.add(message):
                            return declarations
                    except GatewayError as exc:
                        raise _Refused(f"register failed, {exc.message}") from None
        except TimeoutError:
            raise _Refused("register failed, the declarations did not end in time") from None
        except LineTooLong:
            raise _Refused("register failed, a declaration is too large") from None
        raise ConnectionResetError("the plugin left before its declarations ended")

    async def _pump(self, lines: AsyncIterator[bytes], connection: PluginConnection) -> str:
        """Feed the plugin's messages to its sessions until the connection ends or goes silent; why it ended."""
        last_seen = self._clock.monotonic()

        def seen() -> None:
            nonlocal last_seen
            last_seen = self._clock.monotonic()

        async def read() -> str:
            async for line in lines:
                seen()
                message = decode_line(line)
                if message is not None:
                    connection.receive(message)
            return "closed by the plugin"

        async def watch() -> str:
            timeout = self._policy.heartbeat_timeout
            while (silent := self._clock.monotonic() - last_seen) < timeout:
                await self._clock.idle(timeout - silent + 0.01)
            return f"no heartbeat for {timeout:g}s"

        reader = asyncio.create_task(read())
        watchdog = asyncio.create_task(watch())
        try:
            done, _ = await asyncio.wait({reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            finished = done.pop()
            try:
                return finished.result()
            except (ConnectionError, LineTooLong) as exc:
                return f"read failed: {type(exc).__name__}"
        finally:
            for task in (reader, watchdog):
                task.cancel()
            for task in (reader, watchdog):
                with contextlib.suppress(BaseException):
                    await task
