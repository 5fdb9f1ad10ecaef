"""`FreshRetry`: a request that died on a kept-alive connection before any answer goes once more.

A connection kept in the pool may be closed by Dify (or a proxy before it) while it sits idle:
uvicorn and Node close idle connections after 5 s, gunicorn after 2 s. A request sent as that
close is on its way fails with `ServerDisconnectedError` or a reset (`ClientOSError`) before a
byte of answer arrived. Dify never saw such a request complete, so it is sent once more, on a new
connection (another pooled one might be just as stale). A request that got any answer byte, or
that failed while connecting (refused, DNS, TLS: the app is down), is never sent again here.
aiohttp already does this for GET (RFC 9112 §9.3.1); this covers the POSTs (answers, stops,
uploads), whose body httpx holds in memory and can send again.

The keep-alive expiry of `make_http_client` is set below those server timeouts, so the race is
rare; this makes it harmless.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import aiohttp
import httpx
from aiohttp.http_parser import RawResponseMessage
from httpx_aiohttp import AiohttpTransport

__all__ = ["FreshRetry", "fresh_aiohttp_transport", "unanswered"]

logger = logging.getLogger(__name__)


def unanswered(exc: httpx.TransportError) -> bool:
    """Whether `exc` ended a request on an open connection before any byte of answer came back."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ServerDisconnectedError):  # its message is the partial answer, if any
        return not isinstance(cause.message, RawResponseMessage)
    if isinstance(cause, aiohttp.ClientOSError):  # a reset or broken pipe, unless it happened connecting
        return not isinstance(cause, aiohttp.ClientConnectorError)
    # httpx's own transport (h11): the connection closed before a whole status line and headers came.
    return isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc)


def _replayable(request: httpx.Request) -> bool:
    """httpx's in-memory bodies (bytes, JSON, forms, multipart) can be sent again; a caller's
    async iterator can't."""
    return isinstance(request.stream, httpx.SyncByteStream) and isinstance(request.stream, httpx.AsyncByteStream)


class FreshRetry(httpx.AsyncBaseTransport):
    """Sends through `pooled`; a request that `unanswered` failed goes once more through `fresh`,
    a transport that opens a new connection for every request."""

    def __init__(self, pooled: httpx.AsyncBaseTransport, fresh: httpx.AsyncBaseTransport) -> None:
        self._pooled = pooled
        self._fresh = fresh

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._pooled.handle_async_request(request)
        except httpx.TransportError as exc:
            if not (unanswered(exc) and _replayable(request)):
                raise
            logger.info("a kept-alive connection to %s closed before answering; sending again", request.url.host)
        return await self._fresh.handle_async_request(request)

    async def aclose(self) -> None:
        try:
            await self._pooled.aclose()
        finally:
            await self._fresh.aclose()


class _NoKeepAlive(AiohttpTransport):
    """httpx-aiohttp's transport on a connector that closes each connection after its response."""

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._limit = limit

    def get_client(self) -> aiohttp.ClientSession:
        ssl_context: ssl.SSLContext = self.ssl_context
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, ssl=ssl_context, limit=self._limit)
        )


def fresh_aiohttp_transport(limit: int) -> httpx.AsyncBaseTransport:
    """An aiohttp transport that never reuses a connection (at most `limit` open at once)."""
    return _NoKeepAlive(limit)
