"""Sessions multiplexed over one connection to a plugin (its stdio now, a TCP socket for remote debugging).

Each request opens a `PluginSession` under a fresh id; the plugin's `session` messages are routed
to it by id, so many requests share one process. A reverse call (`invoke`) from a session is
handed to that session's `ReverseHandler` in a task of its own and answered with
`backwards_response` lines. `log` events go to the plugin's logger. When the connection is lost
every open session fails with `PluginUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gateway.difyplugins.runtime.protocol import Incoming, backwards_response, encode_request
from gateway.exceptions import GatewayError, PluginUnavailable

__all__ = ["PluginConnection", "PluginRaised", "PluginSession", "ReverseCallError", "ReverseHandler"]

# A reverse call's answers: the `data` of each `response` line, in order; raising `ReverseCallError`
# answers with an `error` line carrying its message (shown to the plugin, so never a secret).
ReverseHandler = Callable[[dict[str, Any]], AsyncIterator[Any]]
Send = Callable[[bytes], Awaitable[None]]

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


class ReverseCallError(GatewayError):
    """A reverse call refused or failed; its message goes back to the plugin as Dify's would."""


class PluginRaised(GatewayError):
    """The plugin ended a session with an error (an exception in its code); `kind` is the exception type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_END = object()


class PluginSession:
    """One invocation's answer: iterate it for the `stream` chunks; it ends with the plugin's `end`."""

    def __init__(self, connection: PluginConnection, session_id: str, reverse: ReverseHandler) -> None:
        self.id = session_id
        self._connection = connection
        self._reverse = reverse
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._calls: set[asyncio.Task[None]] = set()
        self.closed = False

    def _put(self, item: object) -> None:
        self._queue.put_nowait(item)

    def _invoke(self, data: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(data), name=f"reverse-call {self.id}")
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _answer(self, data: dict[str, Any]) -> None:
        request_id = str(data.get("backwards_request_id", ""))
        send = self._connection.send
        try:
            async for item in self._reverse(data):
                await send(backwards_response(self.id, request_id, "response", data=item))
        except ReverseCallError as exc:
            await send(backwards_response(self.id, request_id, "error", message=exc.message))
            return
        except GatewayError as exc:
            # The gateway's own errors are written to be shown (a secret never is in one).
            await send(backwards_response(self.id, request_id, "error", message=exc.message))
            return
        except Exception:
            self._connection.logger.exception("a reverse call of plugin %s failed", self._connection.name)
            await send(backwards_response(self.id, request_id, "error", message="internal error"))
            return
        await send(backwards_response(self.id, request_id, "end"))

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, dict)
            yield item

    async def aclose(self) -> None:
        """Forget the session (answered, abandoned or timed out) and stop its reverse calls."""
        if self.closed:
            return
        self.closed = True
        self._connection._sessions.pop(self.id, None)
        for task in list(self._calls):
            task.cancel()
        for task in list(self._calls):
            with contextlib.suppress(BaseException):
                await task


class PluginConnection:
    """The sessions of one plugin over one line-oriented, full-duplex connection.

    `send` writes one line (the transport serialises writers); the transport feeds every line it
    reads to `receive` and calls `lost` when the connection ends.
    """

    def __init__(self, name: str, send: Send, logger: logging.Logger) -> None:
        self.name = name
        self._send = send
        self.logger = logger
        self._sessions: dict[str, PluginSession] = {}
        self._lost: PluginUnavailable | None = None

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    async def send(self, line: bytes) -> None:
        if self._lost is not None:
            return  # nobody listens any more; the session has failed already
        await self._send(line)

    async def open(self, data: dict[str, Any], reverse: ReverseHandler, **context: Any) -> PluginSession:
        """Start an invocation (`data` = `{"type", "action", ...}`); iterate the session for its answer."""
        if self._lost is not None:
            raise self._lost
        session = PluginSession(self, uuid.uuid4().hex, reverse)
        self._sessions[session.id] = session
        try:
            await self._send(encode_request(session.id, data, **context))
        except BaseException:
            await session.aclose()
            raise
        return session

    def receive(self, message: Incoming) -> None:
        if message.event == "log":
            level = _LEVELS.get(str(message.data.get("level", "")).upper(), logging.INFO)
            self.logger.log(level, "%s", message.data.get("message", ""))
            return
        if message.event == "heartbeat":
            return
        session = self._sessions.get(message.session_id or "")
        if message.event == "error":
            if session is None:
                self.logger.warning("plugin %s reported an error: %s", self.name, message.data.get("error", ""))
            else:
                session._put(PluginRaised("error", str(message.data.get("error", ""))))
            return
        if session is None:
            return  # a late message of a session given up on (deadline, client gone)
        kind, data = message.data.get("type"), message.data.get("data")
        payload = data if isinstance(data, dict) else {}
        if kind == "stream":
            session._put(payload)
        elif kind == "invoke":
            session._invoke(payload)
        elif kind == "error":
            session._put(PluginRaised(str(payload.get("error_type", "Exception")), str(payload.get("message", ""))))
        elif kind == "end":
            session._put(_END)

    def lost(self, reason: str, retry_after: float) -> None:
        """The connection ended: every open session fails with `PluginUnavailable`."""
        self._lost = PluginUnavailable(f"plugin {self.name} is not running ({reason})", retry_after=retry_after)
        for session in list(self._sessions.values()):
            session._put(self._lost)
        self._sessions.clear()
