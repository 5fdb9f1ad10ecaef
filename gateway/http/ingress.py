"""Ingress: the only code that knows Starlette on the endpoint path.

`POST /e/{token}/{path}` → authentic token? → endpoint (enabled)? → rate limit → body (capped,
with a deadline) → route → verifier → handler → response. Every failure is a JSON 4xx; unknown,
forged, disabled and deleted endpoints all get the same 404.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import AsyncIterable, Awaitable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.types import Receive, Scope, Send

from gateway.exceptions import (
    BadRequest,
    ClientClosedRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from gateway.host.runtime import Gateway
from gateway.http.errors import error_response, handle_error
from gateway.http.middleware import BODY_LIMITS, BodyLimits
from gateway.plugin import Headers, Plugin, Request, Response, Verdict
from gateway.records.endpoints import EndpointRecord
from gateway.records.requestlog import RequestLogEntry, loggable_body

__all__ = ["Departures", "Ingress", "to_starlette"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(slots=True)
class _Trace:
    """What one request learned on its way, for the request log and metrics."""

    request_id: str
    headers: Headers
    record: EndpointRecord | None = None
    plugin: Plugin | None = None
    verdict: str = "not-run"
    body: bytes = b""


class Ingress:
    """The ASGI endpoint behind `/e/{token}` and `/e/{token}/{path:path}`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # Request ids: a random per-process prefix and a counter (no syscall per request), unique
        # across processes and restarts as long as the prefixes are.
        self._id_prefix = secrets.token_hex(5)
        self._id_counter = itertools.count()
        self._departures = Departures()

    def _request_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):06x}"

    async def __call__(self, request: StarletteRequest) -> StarletteResponse:
        started = self.gateway.clock.monotonic()
        # The plugin's Headers, built once: a dict lookup each, where Starlette's scan the raw list.
        headers = Headers.from_asgi(request.scope["headers"])
        trace = _Trace(headers.get("x-request-id", "")[:64] or self._request_id(), headers)
        try:
            response = await self._dispatch(request, trace)
        except Exception as exc:  # mapped here rather than by the app, so the status is accounted below
            endpoint, plugin = trace.record.id if trace.record else "-", trace.plugin.name if trace.plugin else "-"
            response = handle_error(exc, f"endpoint {endpoint} (plugin {plugin})")
        self._account(request, trace, response.status_code, started)
        return response

    async def _dispatch(self, request: StarletteRequest, trace: _Trace) -> StarletteResponse:
        gateway = self.gateway
        trace.record = record = await gateway.endpoints.resolve(request.path_params["token"])
        trace.plugin = plugin = gateway.registry.get(record.plugin) if record else None
        if record is not None and plugin is None:  # a Dify package another process installed
            trace.plugin = plugin = await gateway.dify_runtime.find(record.plugin)
        if record is None or plugin is None:
            raise NotFound("no such endpoint")
        limit = record.options.rate_limit_per_minute
        await gateway.limiter.hit(f"ep:{record.id}", gateway.settings.rate_limit_per_minute if limit is None else limit)
        trace.body = await self._read_body(request, record, trace.headers)
        method, path = request.scope["method"], "/" + request.path_params.get("path", "")
        route, params, allowed = plugin.match(method, path)
        if route is None:
            if allowed:
                raise MethodNotAllowed("this route does not accept that method", allow=allowed)
            raise NotFound(f"this endpoint has no route {path}")
        inbound = self._inbound(request, method, path, params, record, trace)
        ctx = await gateway.contexts.for_request(record, plugin)
        trace.verdict = "skipped"
        if route.verify:
            verdict = await plugin.verifier(inbound, ctx)
            trace.verdict = verdict.status
            if not verdict.passed:
                return _rejected(verdict, self._departures)
            if verdict.verified is not None:  # the handler takes it from the request
                inbound = replace(inbound, verified=verdict.verified)
        return to_starlette(await self._departures.run(route.handler(inbound, ctx), request), self._departures)

    async def _read_body(self, request: StarletteRequest, record: EndpointRecord, headers: Headers) -> bytes:
        limits: BodyLimits | None = request.scope.get(BODY_LIMITS)
        cap = record.options.max_body_bytes or self.gateway.settings.max_body_bytes
        if limits is not None:
            limits.max_bytes = cap
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # A compressed body could expand past the cap after verification (zip bombs): refuse it.
            raise UnsupportedMediaType("compressed request bodies (Content-Encoding) are not accepted")
        length = headers.get("content-length")
        if length is not None:
            if not length.isascii() or not length.isdigit():
                raise BadRequest("invalid Content-Length")
            # Length first: int() raises past 4300 digits, and 19 digits are more than any cap.
            if len(length) > 18 or int(length) > cap:
                raise PayloadTooLarge(f"the request body is larger than {cap} bytes")
        # Straight from `receive`: the body limit middleware under it counts and caps the bytes.
        chunks: list[bytes] = []
        while True:
            message = await request.receive()
            if message["type"] != "http.request":
                # The client hung up mid-body: nobody reads the answer; not a plugin failure.
                raise BadRequest("the client disconnected before the whole body arrived")
            chunk: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                if not chunks:
                    return chunk
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)

    def _inbound(
        self,
        request: StarletteRequest,
        method: str,
        path: str,
        params: Mapping[str, str],
        record: EndpointRecord,
        trace: _Trace,
    ) -> Request:
        scope = request.scope
        return Request(
            method=method,
            path=path,
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=trace.headers,
            body=trace.body,
            endpoint_id=record.id,
            endpoint_url=self.gateway.endpoints.url_for(request.path_params["token"]),
            received_at=self.gateway.clock.time(),
            client_ip=_client_ip(scope),
            path_params=params,
            request_id=trace.request_id,
        )

    # -- bookkeeping ------------------------------------------------------------------------------

    def _account(self, request: StarletteRequest, trace: _Trace, status: int, started: float) -> None:
        elapsed = self.gateway.clock.monotonic() - started
        label = trace.plugin.name if trace.plugin and trace.record else "-"
        self.gateway.metrics.requests.inc(label, str(status))
        self.gateway.metrics.latency.observe(elapsed, label)
        record = trace.record
        if record is None or trace.plugin is None:
            return
        log_body = record.options.log_bodies or self.gateway.settings.log_bodies
        entry = RequestLogEntry(
            time=self.gateway.clock.time(),
            request_id=trace.request_id,
            method=request.method,
            path=("/" + request.path_params.get("path", ""))[:512],
            status=status,
            latency_ms=round(elapsed * 1000, 3),
            verdict=trace.verdict,
            client_ip=_client_ip(request.scope),
            body=loggable_body(trace.body) if log_body else None,
        )
        self.gateway.requests.record(record.id, entry)


WATCH_AFTER = 0.05  # seconds a handler runs before the ingress watches for the client leaving


class Departures:
    """Cancels a running handler when its client disconnects (`run`), for one ingress.

    Work meant to outlive the request goes to a job; what runs here is the request's own (say, a
    Dify answer being waited for), and cancelling it stops that answer upstream too. The body has
    been read, so the next ASGI message can only be the disconnect. Handlers run inline and most
    finish at once (an ack): rather than a timer each, the running ones are noted and one timer
    for all, ticking every `WATCH_AFTER` seconds while any runs, starts a watcher task for each
    handler still running since the tick before (so after `WATCH_AFTER` to twice that).
    """

    def __init__(self) -> None:
        self._new: dict[asyncio.Task[Any], StarletteRequest] = {}  # started since the last tick
        self._old: dict[asyncio.Task[Any], StarletteRequest] = {}  # running since the tick before
        self._watchers: dict[asyncio.Task[Any], asyncio.Task[None]] = {}
        self._left: set[asyncio.Task[Any]] = set()  # handlers cancelled because their client left
        self._ticker: asyncio.TimerHandle | None = None

    async def run(self, work: Awaitable[_T], request: StarletteRequest) -> _T:
        """`work`'s result; `ClientClosedRequest` if the client disconnected first (work cancelled)."""
        task = asyncio.current_task()
        assert task is not None
        self._new[task] = request
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().call_later(WATCH_AFTER, self._tick)
        try:
            return await work
        except asyncio.CancelledError:
            if task not in self._left:
                raise  # a shutdown, not the client
            task.uncancel()
            raise ClientClosedRequest("the client went away before the answer") from None
        finally:
            if self._new.pop(task, None) is None:
                self._old.pop(task, None)
            self._left.discard(task)
            watcher = self._watchers.pop(task, None)
            if watcher is not None:
                watcher.cancel()

    def _tick(self) -> None:
        for task, request in self._old.items():
            self._watchers[task] = task.get_loop().create_task(self._watch(task, request))
        self._old, self._new = self._new, {}
        running = self._old or self._watchers
        self._ticker = asyncio.get_running_loop().call_later(WATCH_AFTER, self._tick) if running else None

    async def _watch(self, task: asyncio.Task[Any], request: StarletteRequest) -> None:
        if (await request.receive()).get("type") == "http.disconnect":
            self._left.add(task)
            task.cancel()


def _client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _rejected(verdict: Verdict, departures: Departures) -> StarletteResponse:
    if verdict.response is not None:
        return to_starlette(verdict.response, departures)
    return error_response(Unauthorized("request verification failed"))


def to_starlette(response: Response, departures: Departures) -> StarletteResponse:
    """The plugin's `Response` as Starlette's (also a debugged plugin's answer forwarded from another replica)."""
    headers = list(response.headers)
    if isinstance(response.body, bytes | bytearray):
        out = StarletteResponse(bytes(response.body), response.status, media_type=response.media_type)
    else:
        out = _Relay(response.body, response.status, response.media_type, departures)
    # Multi-valued response headers (several Set-Cookie) survive: append raw pairs.
    for name, value in headers:
        out.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return out


class _Relay(StarletteResponse):
    """A plugin's streamed body written to the client by the request's own task.

    What Starlette's `StreamingResponse` does, without its per-stream task group, second task and
    disconnect listener (a few KiB each of thousands of open answers): the ingress's `Departures`
    already watches for the client leaving, and here watches the stream too. A client that leaves
    cancels the body (and with it the answer upstream); a body that fails midway ends the stream
    (logged), as a plugin failure must not crash the server.
    """

    def __init__(self, body: AsyncIterable[bytes], status: int, media_type: str | None, departures: Departures) -> None:
        self.status_code = status  # no `body`: like a StreamingResponse, no Content-Length
        self.media_type = media_type
        self.background = None
        self.init_headers(None)
        self._body = body
        self._departures = departures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._departures.run(self._relay(send), StarletteRequest(scope, receive))
        except ClientClosedRequest:
            pass  # nobody is reading: the body was cancelled, there is nothing to end

    async def _relay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        chunks = aiter(self._body)
        try:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception:  # the plugin's failure, not the client's: the stream ends here
                    logger.exception("a streamed response failed midway")
                    break
                if not isinstance(chunk, bytes | memoryview):
                    chunk = chunk.encode(self.charset)  # a plugin that streams text
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:  # stopped early (the client left, a send failed): its cleanup runs now
                await aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
