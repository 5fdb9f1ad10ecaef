"""The byte side of a plugin connection, shared by its transports (a subprocess's stdio, a TCP socket
for remote debugging): lines read from a stream, and a serialised line writer.

Lines may be of any length (a large non-streamed answer is one line); `max_line` bounds them where
the peer is not trusted yet (a debugging connection before its handshake).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from gateway.exceptions import PluginUnavailable

__all__ = ["LineTooLong", "line_writer", "read_lines"]

READ_CHUNK = 1 << 16


class LineTooLong(Exception):
    """The peer sent a line longer than allowed."""


async def read_lines(
    stream: asyncio.StreamReader,
    *,
    max_line: int | None = None,
    on_data: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """Each complete line of `stream` (without its newline) until it ends; `on_data` is called for
    every chunk read (a sign of life, heartbeats included)."""
    buffer = bytearray()
    while chunk := await stream.read(READ_CHUNK):
        if on_data is not None:
            on_data()
        buffer += chunk
        if b"\n" not in chunk:
            if max_line is not None and len(buffer) > max_line:
                raise LineTooLong(f"a line longer than {max_line} bytes")
            continue
        *lines, rest = bytes(buffer).split(b"\n")
        buffer = bytearray(rest)
        for line in lines:
            if max_line is not None and len(line) > max_line:
                raise LineTooLong(f"a line longer than {max_line} bytes")
            yield line


def line_writer(
    writer: asyncio.StreamWriter, *, name: str, retry_after: float, lock: asyncio.Lock | None = None
) -> Callable[[bytes], Awaitable[None]]:
    """`send(line)` for a connection's writers, one at a time; a closed peer is `PluginUnavailable`."""
    serialise = lock or asyncio.Lock()

    async def write(line: bytes) -> None:
        async with serialise:
            try:
                writer.write(line)
                await writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise PluginUnavailable(f"plugin {name} is not running", retry_after=retry_after) from exc

    return write
