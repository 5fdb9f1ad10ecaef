"""`ConnectionSlots`: the gateway's own bound on open requests to Dify, as an httpx transport.

A wait for a free connection is the gateway's shortage, never the Dify app's. httpx-aiohttp folds
that wait into aiohttp's connect timeout, so it surfaced as `httpx.ConnectTimeout`, the same as
an app that accepts no connections, and a load spike opened every app's breaker. Counting the
slots here keeps the two apart: a wait past the request's `pool` timeout raises
`httpx.PoolTimeout` (the client turns it into `Overloaded`), and the inner transport gets as many
connections as there are slots, so it never waits itself.

A slot is held from sending the request until the response is closed (a streamed answer holds
it for the whole stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import httpx

__all__ = ["ConnectionSlots"]


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
        response.stream = _Releasing(response.stream, self._slots.release)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Releasing(httpx.AsyncByteStream):
    """A response body that gives its slot back when closed (once)."""

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
