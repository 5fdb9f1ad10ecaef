"""`ConnectionSlots`: the gateway's own bound on open requests to Dify, as an httpx transport.

A wait for a free connection is the gateway's shortage, never the Dify app's. httpx-aiohttp folds
that wait into aiohttp's connect timeout, so it surfaced as `httpx.ConnectTimeout`, the same as
an app that accepts no connections, and a load spike opened every app's breaker. Counting the
slots here keeps the two apart: a wait past the request's `pool` timeout raises
`httpx.PoolTimeout` (the client turns it into `Overloaded`), and the inner transport gets as many
connections as there are slots, so it never waits itself.

A slot is held from sending the request until the response is closed (a streamed answer holds
it for the whole stream).

The body it hands out is a `ResponseBody`, also reachable as `body_of(response)`: a streamed
answer reads its chunks from there with one call per chunk instead of through httpx's stack of
async generators (the response's, then one per transport layer), each of which keeps a frame and
its last chunk alive for as long as the stream waits. With 2,000 answers open that is memory
held for nothing (see `docs/performance.md`, streammem).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import httpx
from aiohttp import StreamReader
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

__all__ = ["ConnectionSlots", "ResponseBody", "body_of"]

_BODY = "gateway.response_body"  # the response extension that holds the `ResponseBody`
_CHUNK = 16 * 1024  # the most one read returns (httpx-aiohttp's own chunk size)


class ConnectionSlots(httpx.AsyncBaseTransport):
    """Wraps `inner`; at most `limit` requests in flight (until their responses are closed)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._slots = anyio.Semaphore(limit)
        self.limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("pool")
        acquired = False
        with anyio.move_on_after(timeout):
            await self._slots.acquire()  # a slot granted as the wait is cancelled is handed back by anyio
            acquired = True
        if not acquired:
            raise httpx.PoolTimeout(f"no free connection to Dify within {timeout:g} s", request=request)
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._slots.release()
            raise
        if response.is_closed:  # a body already in memory (a mock's): nothing left to hold the slot for
            self._slots.release()
            return response
        body = ResponseBody(response.stream, self._slots.release)
        response.stream = body
        response.extensions[_BODY] = body
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class ResponseBody(httpx.AsyncByteStream):
    """A response body that gives its slot back when closed (once).

    `read()` returns the next chunk (b"" at the end); it is also an async iterator of them (what
    httpx reads). A body from httpx-aiohttp is read straight from aiohttp's `StreamReader`, the
    errors mapped as httpx-aiohttp maps them; any other body through its own iterator.
    """

    __slots__ = ("_content", "_iterator", "_release", "_stream")

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._release: Callable[[], None] | None = release
        self._content = _aiohttp_content(stream)
        self._iterator: AsyncIterator[bytes] | None = None

    async def read(self) -> bytes:
        """The next non-empty chunk, or b"" at the end of the body."""
        if self._content is not None:
            with map_aiohttp_exceptions():
                return await self._content.read(_CHUNK)
        if self._iterator is None:
            self._iterator = aiter(self._stream)
        async for chunk in self._iterator:
            if chunk:
                return chunk
        return b""

    def __aiter__(self) -> ResponseBody:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def body_of(response: httpx.Response) -> ResponseBody | None:
    """The `ResponseBody` of a response `ConnectionSlots` returned and nobody read yet, else None.

    Reading it directly skips httpx's content decoding: use it only when the response has no
    `content-encoding` (or `identity`). Closing it closes the response's connection and slot.
    """
    body = response.extensions.get(_BODY)
    if not isinstance(body, ResponseBody) or response.is_stream_consumed or response.is_closed:
        return None
    return body


def _aiohttp_content(stream: httpx.AsyncByteStream) -> StreamReader | None:
    """aiohttp's reader under an httpx-aiohttp body (an attribute it does not publish), if any."""
    if isinstance(stream, AiohttpResponseStream):
        content = getattr(getattr(stream, "_aiohttp_response", None), "content", None)
        if isinstance(content, StreamReader):
            return content
    return None
