"""`DifyAnswerStream`: one streamed Dify answer, from connect to cleanup.

Lifecycle:
0. `__aenter__` takes one of the process's answer places (`Admission`; `Overloaded` when none
   comes free in time). It is held until `__aexit__` is done, stop call included.
1. `__aenter__` opens the upstream stream and waits for its **first** SSE event (a ping counts).
   Everything that can be retried happens here: backoff with jitter on retryable errors, the
   per-app breaker, one retry without `conversation_id` after "Conversation Not Exists.", and
   the fallback app. Once `__aenter__` returns, nothing is retried (a resent chat message would
   create a second message, dify-api.md §5).
2. Iterate `deltas()` (text for UIs) or `events()` (typed events); read `answer` at the end.
   A stream that sends nothing but pings (or nothing at all) for the client's `idle_timeout`
   ends with `UpstreamTimeout`: Dify pings while it is alive, but pings are not an answer.
3. `__aexit__` closes the upstream response. If the answer did not finish (the consumer broke
   out, was cancelled, or timed out) it calls the stop endpoint with the same `user` and the
   saved `task_id`, shielded and bounded by `stop_timeout`, never raising.

Only awaits on the network sit inside cancel scopes (the overall deadline); no scope spans a
`yield`, and the iterators are plain classes, so abandoning them leaves no async generator behind.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol, TypeVar

import anyio
import httpx

from gateway.clock import Clock
from gateway.dify.admission import Admission
from gateway.dify.answer import AnswerBuilder
from gateway.dify.breaker import Ticket
from gateway.dify.errors import AnswerCutOff, ConversationNotFound, DifyStreamError, WorkflowFailed
from gateway.dify.events import DifyEvent, MalformedEvent, PingEvent, parse_event
from gateway.dify.models import Answer, AskRequest, Delta, DifyApp
from gateway.dify.sse import ServerSentEvent, SSELineTooLong, aiter_sse
from gateway.exceptions import Overloaded, UpstreamError, UpstreamTimeout

__all__ = ["DifyAnswerStream"]

logger = logging.getLogger(__name__)
_MAX_ERROR_BODY = 64 * 1024


class _Upstream:
    """An open event stream (httpx-sse's decoder, lines capped) and the one event read ahead
    (the first, read while opening, or the next, read by `_read_more`) not yet consumed.
    It keeps nothing of the HTTP response but its body (`EventReader`)."""

    __slots__ = ("events", "pending")

    def __init__(self, response: httpx.Response, max_line_length: int) -> None:
        self.events = aiter_sse(response, max_line_length=max_line_length)
        self.pending: ServerSentEvent | None = None

    async def next_event(self, app: DifyApp) -> ServerSentEvent | None:
        """The next event, or None at the end of the stream."""
        try:
            return await anext(self.events, None)
        except SSELineTooLong as exc:
            raise UpstreamError(f"Dify app '{app.name}' sent an oversized event: {exc}", app=app.name) from exc

    def take(self) -> ServerSentEvent | None:
        """The next event if it arrived already (no read, no wait), else None."""
        return self.events.take()

    @property
    def ready(self) -> bool:
        """Whether the next event is at hand without reading the network."""
        return self.pending is not None or self.events.buffered

    async def aclose(self) -> None:
        await self.events.aclose()  # closes the response


T = TypeVar("T")


class StreamingClient(Protocol):
    """What a stream needs of the client that opened it (`DifyClient` is one): its HTTP client for an app,
    clock and limits, how it builds and classifies calls, its breaker-guarded retries and the
    stop call. A protocol, so this module does not import the client that imports it."""

    clock: Clock
    admission: Admission
    idle_timeout: float
    stream_timeout: httpx.Timeout
    max_answer_chars: int
    max_event_chars: int
    stop_timeout: float

    def http_for(self, app: DifyApp) -> httpx.AsyncClient: ...
    def headers(self, app: DifyApp, *, sse: bool = False) -> dict[str, str]: ...
    def build_payload(self, app: DifyApp, request: AskRequest) -> tuple[str, dict[str, Any]]: ...
    async def with_retries(
        self, app: DifyApp, attempt: Callable[[], Awaitable[T]], deadline: float
    ) -> tuple[T, Ticket]: ...
    def judge(self, ticket: Ticket, error: UpstreamError | None, *, completed: bool = False) -> None: ...
    def error_from_response(self, app: DifyApp, response: httpx.Response, body: bytes) -> UpstreamError: ...
    def transport_error(self, app: DifyApp, exc: httpx.TransportError) -> UpstreamError | Overloaded: ...
    async def stop(self, app: DifyApp, task_id: str, user: str) -> None: ...
    async def keyed(self, app: DifyApp, call: Callable[[DifyApp], Awaitable[T]]) -> tuple[DifyApp, T]: ...


class DifyAnswerStream:
    """A streamed answer. Use as an async context manager; created by `DifyClient.stream`.

    Example:
        async with client.stream(app, AskRequest(user="slack:T1:U1", query="hi")) as stream:
            async for delta in stream.deltas():
                if delta.kind == "text":
                    shown += delta.text
                elif delta.kind == "replace":
                    shown = delta.text
        answer = stream.answer  # text, ids, usage, ...

    Raises (from `__aenter__`, before streaming): `Overloaded` (no answer place or connection
    came free in time), `UpstreamError` and subclasses, `CircuitOpen`, `UpstreamTimeout`. Raises
    while iterating: `DifyStreamError`, `WorkflowFailed`, `AnswerCutOff`, `AnswerTooLarge`,
    `UpstreamTimeout` (each with `.partial` where it applies).
    """

    __slots__ = (
        "_admitted",
        "_app",
        "_builder",
        "_client",
        "_deadline",
        "_ended",
        "_fallback",
        "_primary",
        "_progress_at",
        "_request",
        "_retry_without_conversation",
        "_ticket",
        "_timeout",
        "_upstream",
        "_user",
    )

    def __init__(
        self,
        client: StreamingClient,
        app: DifyApp,
        request: AskRequest,
        *,
        fallback: DifyApp | None,
        retry_without_conversation: bool,
        deadline: float,
    ) -> None:
        self._client = client
        self._primary = app
        self._request: AskRequest | None = request  # let go once open (a prompt may be large)
        self._fallback = fallback
        self._retry_without_conversation = retry_without_conversation
        self._timeout = deadline
        self._deadline = 0.0
        self._app = app
        self._user = request.user
        self._upstream: _Upstream | None = None
        self._builder: AnswerBuilder | None = None
        self._ended = False  # the upstream said its last word (terminator, error, or EOF)
        self._ticket: Ticket | None = None  # the breaker's ticket, settled once (`_judge`)
        self._admitted = False  # holds one of the client's answer places
        self._progress_at = 0.0  # clock.monotonic() of the last event that was not a ping

    # --- public surface --------------------------------------------------------------------------

    @property
    def app(self) -> DifyApp:
        """The app answering (the fallback, if the primary failed before streaming)."""
        return self._app

    @property
    def answer(self) -> Answer:
        """The answer so far; `answer.complete` is True once a terminator arrived."""
        return self._require_builder().answer()

    @property
    def task_id(self) -> str | None:
        return self._require_builder().task_id

    @property
    def conversation_id(self) -> str | None:
        return self._require_builder().conversation_id

    @property
    def ready(self) -> bool:
        """Whether the next event arrived already: reading it will not wait for Dify. A consumer
        may render what is ready together and send it as one write (the OpenAI facade does).
        False once the stream is closed or said its last word."""
        upstream = self._upstream
        builder = self._builder
        if upstream is None or builder is None or self._ended or builder.final:
            return False
        return upstream.ready

    def events(self) -> AsyncIterator[DifyEvent]:
        """Iterate typed events (pings included)."""
        return _EventIterator(self)

    def deltas(self) -> AsyncIterator[Delta]:
        """Iterate `Delta`s (text, replace, reasoning, thought, file, progress, ping)."""
        return _DeltaIterator(self)

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self.deltas()

    async def collect(self) -> Answer:
        """Consume the rest of the stream and return the complete answer."""
        while await self._next() is not None:
            pass
        return self.answer

    # --- context manager -------------------------------------------------------------------------

    async def __aenter__(self) -> DifyAnswerStream:
        request, self._request = self._request, None
        if request is None:
            raise RuntimeError("a DifyAnswerStream is opened once")
        await self._client.admission.enter()
        self._admitted = True
        try:
            await self._open_any(request)
        except BaseException:
            self._leave()
            raise
        return self

    async def _open_any(self, request: AskRequest) -> None:
        self._deadline = anyio.current_time() + self._timeout
        try:
            await self._open(self._primary, request)
        except ConversationNotFound:
            raise
        except UpstreamError as primary_error:
            if self._fallback is None:
                raise
            logger.warning(
                "Dify app %r failed before streaming (%s); using fallback %r",
                self._primary.name,
                primary_error.code,
                self._fallback.name,
            )
            try:
                # Conversation ids belong to one app: the fallback starts a new conversation.
                await self._open(self._fallback, replace(request, conversation_id=None))
            except UpstreamError as fallback_error:
                raise fallback_error from primary_error

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._close()
        finally:
            self._leave()

    def _leave(self) -> None:
        if self._admitted:
            self._admitted = False
            self._client.admission.leave()

    async def _close(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is None:
            return
        builder = self._require_builder()
        self._judge(None)  # success if a terminator arrived, else no verdict (abandoned)
        if upstream.pending is not None:  # an event read but not consumed may carry the task id
            builder.remember_ids(parse_event(upstream.pending))
        with anyio.CancelScope(shield=True):
            try:
                await upstream.aclose()
            except Exception:  # closing a broken connection may fail; nothing to do about it
                logger.debug("closing the Dify response failed", exc_info=True)
            if not self._ended and not builder.terminated and builder.task_id:
                await self._stop_quietly(builder.task_id)

    # --- opening -------------------------------------------------------------------------------

    async def _open(self, app: DifyApp, request: AskRequest) -> None:
        client = self._client
        path, payload = client.build_payload(app, request)
        reset = False

        def opened(keyed: DifyApp) -> Awaitable[tuple[_Upstream, Ticket]]:
            return client.with_retries(keyed, lambda: self._attempt(keyed, path, payload), self._deadline)

        try:
            app, (upstream, ticket) = await client.keyed(app, opened)
        except ConversationNotFound:
            if not (self._retry_without_conversation and "conversation_id" in payload):
                raise
            logger.info("Dify app %r lost a conversation; starting a new one", app.name)
            payload.pop("conversation_id")
            reset = True
            app, (upstream, ticket) = await client.keyed(app, opened)
        self._app = app
        self._upstream = upstream
        self._ticket = ticket
        self._progress_at = client.clock.monotonic()
        self._builder = AnswerBuilder(app, max_chars=client.max_answer_chars)
        self._builder.conversation_reset = reset

    async def _attempt(self, app: DifyApp, path: str, payload: dict[str, Any]) -> _Upstream:
        """One HTTP attempt, up to and including the first SSE event."""
        client = self._client
        http = client.http_for(app)
        request = http.build_request(
            "POST", app.url(path), json=payload, headers=client.headers(app, sse=True), timeout=client.stream_timeout
        )
        response: httpx.Response | None = None
        upstream: _Upstream | None = None
        ok = False
        try:
            with anyio.CancelScope(deadline=self._deadline) as scope:
                response = await http.send(request, stream=True)
                if response.status_code != 200:
                    raise client.error_from_response(app, response, await _read_capped(response))
                content_type = response.headers.get("content-type", "")
                if not content_type.startswith("text/event-stream"):
                    raise UpstreamError(
                        f"Dify app '{app.name}' answered with {content_type or 'no content type'} "
                        "instead of an event stream",
                        upstream_status=200,
                        app=app.name,
                    )
                upstream = _Upstream(response, client.max_event_chars)
                first = await upstream.next_event(app)
                if first is None:
                    raise UpstreamError(
                        f"Dify app '{app.name}' closed the stream before sending anything",
                        upstream_status=200,
                        retryable=True,
                        app=app.name,
                    )
                upstream.pending = first
            if scope.cancelled_caught or upstream is None:
                raise self._deadline_error(app)
            ok = True
            return upstream
        except httpx.TransportError as exc:
            raise client.transport_error(app, exc) from exc
        finally:
            if not ok and response is not None:
                with anyio.CancelScope(shield=True):
                    await (upstream.aclose() if upstream is not None else response.aclose())

    # --- iterating -----------------------------------------------------------------------------

    async def _next(self) -> tuple[DifyEvent, list[Delta]] | None:
        """The next event and its deltas, or None at the end. Raises the stream's errors."""
        upstream = self._upstream
        builder = self._require_builder()
        if upstream is None:
            return None
        while upstream.pending is None:
            if self._ended or builder.final:
                return None
            # An event that came with an earlier chunk needs no read, so no deadline scope either.
            upstream.pending = upstream.take()
            if upstream.pending is None:
                await self._read_more(upstream, builder)
        sse, upstream.pending = upstream.pending, None
        event = parse_event(sse)
        now = self._client.clock.monotonic()
        if not isinstance(event, PingEvent):
            self._progress_at = now
        elif now - self._progress_at > self._client.idle_timeout:
            raise self._fail(self._idle_error())
        if isinstance(event, MalformedEvent):
            logger.warning("ignored a malformed Dify event from app %r: %s", self._app.name, event.reason)
        try:
            deltas = builder.feed(event)
        except UpstreamError as exc:
            # error event / failed workflow end the upstream task; AnswerTooLarge leaves it running.
            self._ended = isinstance(exc, DifyStreamError | WorkflowFailed)
            self._judge(exc)
            raise
        return event, deltas

    async def _read_more(self, upstream: _Upstream, builder: AnswerBuilder) -> None:
        app = self._app
        sse: ServerSentEvent | None = None
        try:
            with anyio.CancelScope(deadline=self._deadline) as scope:
                sse = await upstream.next_event(app)
        except httpx.ReadTimeout as exc:
            raise self._fail(self._idle_error()) from exc
        except httpx.TransportError as exc:
            raise self._fail(self._cut_off(builder, f"the connection broke ({type(exc).__name__})")) from exc
        if scope.cancelled_caught:
            raise self._fail(self._deadline_error(app))
        if sse is None:
            if not builder.terminated:
                # Not marked ended: the task may still run upstream (a proxy cut us), so stop it.
                raise self._fail(self._cut_off(builder, "the stream closed without a terminator"))
            self._ended = True
            return
        upstream.pending = sse

    def _fail(self, error: UpstreamError) -> UpstreamError:
        self._judge(error)
        return error

    def _judge(self, error: UpstreamError | None) -> None:
        """Give the breaker its verdict on this stream (the ticket takes only the first)."""
        if self._ticket is not None:
            self._client.judge(self._ticket, error, completed=self._require_builder().terminated)

    def _idle_error(self) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"Dify app '{self._app.name}' sent no answer for {self._client.idle_timeout:g} s "
            "(pings only, or nothing at all)",
            app=self._app.name,
        )

    def _cut_off(self, builder: AnswerBuilder, why: str) -> AnswerCutOff:
        return AnswerCutOff(
            f"the answer from Dify app '{self._app.name}' was cut off: {why}",
            partial=builder.answer(complete=False),
            app=self._app.name,
        )

    def _deadline_error(self, app: DifyApp) -> UpstreamTimeout:
        message = f"no complete answer from Dify app '{app.name}' within {self._timeout:g} s"
        return UpstreamTimeout(message, app=app.name)

    async def _stop_quietly(self, task_id: str) -> None:
        try:
            with anyio.move_on_after(self._client.stop_timeout):
                await self._client.stop(self._app, task_id, self._user)
        except Exception as exc:  # best effort: the consumer is already gone or failing
            logger.warning("stopping Dify task %s of app %r failed: %s", task_id, self._app.name, exc)

    def _require_builder(self) -> AnswerBuilder:
        if self._builder is None:
            raise RuntimeError("DifyAnswerStream is not open: use `async with client.stream(...)`")
        return self._builder


class _EventIterator:
    __slots__ = ("_stream",)

    def __init__(self, stream: DifyAnswerStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _EventIterator:
        return self

    async def __anext__(self) -> DifyEvent:
        item = await self._stream._next()
        if item is None:
            raise StopAsyncIteration
        return item[0]


class _DeltaIterator:
    """The deltas of each event in turn; an event's list is let go once handed out."""

    __slots__ = ("_buffer", "_stream")

    def __init__(self, stream: DifyAnswerStream) -> None:
        self._stream = stream
        self._buffer: list[Delta] = []  # the rest of the current event's deltas, reversed

    def __aiter__(self) -> _DeltaIterator:
        return self

    async def __anext__(self) -> Delta:
        while not self._buffer:
            item = await self._stream._next()
            if item is None:
                raise StopAsyncIteration
            self._buffer = item[1][::-1]
        return self._buffer.pop()


async def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _MAX_ERROR_BODY:
            break
    return bytes(body[:_MAX_ERROR_BODY])
