"""`DifyClient`: the Dify Service API client (dify-api.md), on an injected `httpx.AsyncClient`.

Always streams from Dify (blocking mode is cut by proxies at 60-100 s, §3) and assembles
answers on our side. Timeouts: connect, a read timeout longer than Dify's 10 s ping interval,
an idle limit (pings don't count as progress) and an overall deadline per answer. Retries
(full-jitter backoff) happen only before the first event; a per-app circuit breaker fails fast
while the app is down (`counts_against_app`). Each process runs at most `max_concurrent_answers`
answers at once (`Admission`); the gateway's own limits (that one, and the connection slots of
`make_http_client`) raise `Overloaded`, which is never the app's fault.

Example:
    http = make_http_client()
    client = DifyClient(http, clock=SystemClock())
    app = DifyApp(name="support", base_url="https://api.dify.ai/v1", api_key=key, mode="chat")
    answer = await client.ask(app, AskRequest(user="slack:T1:U1", query="Hello"))
    async with client.stream(app, AskRequest(user="slack:T1:U1", query="Hi")) as stream:
        async for delta in stream.deltas():
            ...
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import anyio
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.clock import Clock
from gateway.dify.admission import OVERLOAD_RETRY_AFTER, Admission
from gateway.dify.breaker import BreakerRegistry, Ticket
from gateway.dify.errors import classify, counts_against_app
from gateway.dify.models import CHAT_MODES, Answer, AppDescription, AskRequest, DifyApp
from gateway.dify.pool import ConnectionSlots
from gateway.dify.reconnect import FreshRetry, fresh_aiohttp_transport
from gateway.dify.retry import RetryPolicy
from gateway.dify.stream import DifyAnswerStream
from gateway.exceptions import BadRequest, ConfigurationError, Overloaded, UpstreamError, UpstreamTimeout
from gateway.security.boundedjson import loads as bounded_loads

__all__ = ["DEFAULT_KEEPALIVE_EXPIRY", "DEFAULT_TIMEOUT", "DifyClient", "make_http_client"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# read=60 s: Dify pings every 10 s while a node thinks, so only a dead stream stays silent this long.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=10.0, pool=5.0)
# Below the idle timeouts of the servers before Dify (uvicorn, Node: 5 s; nginx 75 s; ALB 60 s).
DEFAULT_KEEPALIVE_EXPIRY = 4.0


def make_http_client(
    *, use_aiohttp: bool = True, max_connections: int = 1100, keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY
) -> httpx.AsyncClient:
    """Build the production HTTP client for Dify calls (one per process, closed in the lifespan).

    At most `max_connections` requests are open at once (`ConnectionSlots`); a wait for a free
    one past the `pool` timeout is `httpx.PoolTimeout`, which the client reports as `Overloaded`.

    Idle connections are kept `keepalive_expiry` seconds, less than servers keep them (uvicorn and
    Node: 5 s), and a request that a server's idle close cut off before any answer byte is sent
    once more on a new connection (`FreshRetry`).

    `use_aiohttp=True` routes requests through `httpx_aiohttp.AiohttpTransport`. It is the
    default because `bench/bench_dify_transport.py` (50 concurrent streamed answers of ~22 SSE
    events against the simulator on loopback, 2 x 2000 answers per transport, uvloop, 2 vCPUs)
    measured 715 vs 292 answers/s (2.45x), p50 69 vs 163 ms, p99 122 vs 374 ms, and half the
    client CPU per answer (1.33 vs 2.75 ms) compared with httpx's own transport, whose httpcore
    pool takes a lock and checks readability per connection (encode/httpx#3215).
    Note: respx does not intercept the aiohttp transport; tests pass `use_aiohttp=False`.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=keepalive_expiry
    )
    if use_aiohttp:
        inner = FreshRetry(AiohttpTransport(limits=limits), fresh_aiohttp_transport(max_connections))
    else:
        single_use = httpx.Limits(max_connections=max_connections, max_keepalive_connections=0)
        inner = FreshRetry(httpx.AsyncHTTPTransport(limits=limits), httpx.AsyncHTTPTransport(limits=single_use))
    transport = ConnectionSlots(inner, max_connections)
    return httpx.AsyncClient(transport=transport, timeout=DEFAULT_TIMEOUT, follow_redirects=False)


def _json_body(body: bytes) -> Any:
    """Dify's JSON answer, or None when it is not JSON, too large or nested too deeply to read."""
    try:
        return bounded_loads(body)
    except BadRequest:  # the bounded parser's verdict on bytes that are not (sane) JSON
        return None


def _mislabelled_timeout(exc: httpx.TransportError) -> bool:
    """httpx-aiohttp maps every `aiohttp.ClientConnectionError` (connection refused, server
    disconnected) to `httpx.ConnectTimeout`; those are connection errors, not timeouts."""
    cause = exc.__cause__
    return isinstance(cause, aiohttp.ClientError) and not isinstance(cause, TimeoutError)


class DifyClient:
    """Talks to Dify apps. Stateless per call except for the per-app breakers.

    Args:
        http: the shared HTTP client (injected; this class never creates or closes one).
        clock: sleeps for backoff and times the breakers (`FakeClock` in tests).
        timeout: per-request httpx timeouts; `read` must exceed Dify's 10 s ping interval.
        deadline: seconds allowed for one whole answer, retries included.
        retry: attempts and backoff before the first event.
        rng: randomness for jitter (seed it in tests).
        breaker_threshold / breaker_cool_down: consecutive "app is down" failures that open an
            app's breaker, and how long it stays open before one trial is let through.
        max_concurrent_answers / answer_queue_timeout: answers this client runs at once, and how
            long one more waits for a place before `Overloaded`.
        idle_timeout: seconds a started stream may send nothing but pings (or nothing at all)
            before it ends with `UpstreamTimeout`.
        max_answer_chars: cap on an answer's text + reasoning (Dify output is untrusted).
        max_event_chars: cap on one SSE line.
        stop_timeout: how long the stop call after a cancelled stream may take.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        clock: Clock,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        deadline: float = 300.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        breaker_threshold: int = 5,
        breaker_cool_down: float = 30.0,
        max_concurrent_answers: int = 1000,
        answer_queue_timeout: float = 30.0,
        idle_timeout: float = 30.0,
        max_answer_chars: int = 1 << 20,
        max_event_chars: int = 4 << 20,
        stop_timeout: float = 5.0,
        guarded_http: httpx.AsyncClient | None = None,
    ) -> None:
        self.http = http
        self.guarded_http = guarded_http  # for apps whose base URL a workspace token set (`DifyApp.guarded`)
        self.clock = clock
        self.timeout = timeout
        self.deadline = deadline
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self.breakers = BreakerRegistry(clock, breaker_threshold, breaker_cool_down)
        self.admission = Admission(clock, limit=max_concurrent_answers, queue_timeout=answer_queue_timeout)
        if idle_timeout <= 0:
            raise ConfigurationError("the stream idle timeout must be positive")
        self.idle_timeout = idle_timeout
        # Total silence (not even pings) ends a stream at the idle limit, not at the longer read timeout.
        self.stream_timeout = httpx.Timeout(
            connect=timeout.connect, read=min(timeout.read or idle_timeout, idle_timeout),
            write=timeout.write, pool=timeout.pool,
        )  # fmt: skip
        self.max_answer_chars = max_answer_chars
        self.max_event_chars = max_event_chars
        self.stop_timeout = stop_timeout

    # --- public API ----------------------------------------------------------------------------

    async def info(self, app: DifyApp) -> AppDescription:
        """`GET /info`. Raises `UpstreamError` (401: "the app API key was rejected ...")."""
        body = await self._get_json(app, "/info")
        tags = body.get("tags") or []
        return AppDescription(
            name=str(body.get("name") or ""),
            description=str(body.get("description") or ""),
            tags=tuple(str(tag) for tag in tags) if isinstance(tags, list) else (),
            mode=str(body.get("mode") or ""),
            author_name=str(body.get("author_name") or ""),
        )

    async def parameters(self, app: DifyApp) -> dict[str, Any]:
        """`GET /parameters`: input form, file-upload limits, opening statement."""
        return await self._get_json(app, "/parameters")

    async def upload(self, app: DifyApp, *, user: str, name: str, content: bytes, mime_type: str) -> dict[str, Any]:
        """`POST /files/upload` (multipart `file` + `user`): Dify's file record (`id` for `local_file`).

        Use the same `user` for the message that references the file. Not retried (the body may
        be large; Dify's 413 `file_too_large` / 415 `unsupported_file_type` are final).
        """
        _, body = await self.keyed(app, lambda keyed: self._upload(keyed, user, name, content, mime_type))
        return body

    async def _upload(self, app: DifyApp, user: str, name: str, content: bytes, mime_type: str) -> dict[str, Any]:
        try:
            response = await self.http_for(app).post(
                app.url("/files/upload"),
                data={"user": user},
                files={"file": (name, content, mime_type)},
                headers=self.headers(app),
                timeout=self.timeout,
            )
        except httpx.TransportError as exc:
            raise self.transport_error(app, exc) from exc
        if response.status_code not in (200, 201):
            raise self.error_from_response(app, response, response.content)
        body = _json_body(response.content)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise UpstreamError(f"Dify app '{app.name}' sent no file id for an upload", app=app.name)
        return body

    async def stop(self, app: DifyApp, task_id: str, user: str) -> None:
        """Stop a streaming task. Chat/completion stops act only when `user` matches (a mismatch
        still "succeeds"), so pass the same user that started it. Not retried; no breaker."""
        await self.keyed(app, lambda keyed: self._stop(keyed, task_id, user))

    async def _stop(self, app: DifyApp, task_id: str, user: str) -> None:
        if app.mode == "workflow":
            path = f"/workflows/tasks/{task_id}/stop"
        elif app.mode == "completion":
            path = f"/completion-messages/{task_id}/stop"
        else:
            path = f"/chat-messages/{task_id}/stop"
        try:
            response = await self.http_for(app).post(
                app.url(path), json={"user": user}, headers=self.headers(app), timeout=self.timeout
            )
        except httpx.TransportError as exc:
            raise self.transport_error(app, exc) from exc
        if response.status_code != 200:
            raise self.error_from_response(app, response, response.content)

    def stream(
        self,
        app: DifyApp,
        request: AskRequest,
        *,
        fallback: DifyApp | None = None,
        retry_without_conversation: bool = True,
        deadline: float | None = None,
    ) -> DifyAnswerStream:
        """Stream an answer: `async with client.stream(app, req) as s: async for d in s.deltas()`.

        Args:
            fallback: an app to ask instead when `app` fails before streaming starts (including
                an open breaker). It starts a new conversation; `answer.app` says who answered.
            retry_without_conversation: after 404 "Conversation Not Exists." retry once without
                `conversation_id`; the answer then has `conversation_reset=True` and the new id.
            deadline: overrides the client's overall deadline for this answer.
        """
        return DifyAnswerStream(
            self,
            app,
            request,
            fallback=fallback,
            retry_without_conversation=retry_without_conversation,
            deadline=self.deadline if deadline is None else deadline,
        )

    async def ask(
        self,
        app: DifyApp,
        request: AskRequest,
        *,
        fallback: DifyApp | None = None,
        retry_without_conversation: bool = True,
        deadline: float | None = None,
    ) -> Answer:
        """Stream an answer and return it assembled. Same arguments and errors as `stream`."""
        stream = self.stream(
            app, request, fallback=fallback, retry_without_conversation=retry_without_conversation, deadline=deadline
        )
        async with stream:
            return await stream.collect()

    # --- helpers shared with DifyAnswerStream --------------------------------------------------------

    async def keyed(self, app: DifyApp, call: Callable[[DifyApp], Awaitable[T]]) -> tuple[DifyApp, T]:
        """`call(app)`; when Dify refuses the key (401) during a key rotation, `call` again with the
        previous key. Returns the app (the key) that worked with the result."""
        try:
            return app, await call(app)
        except UpstreamError as exc:
            previous = app.on_previous_key() if exc.upstream_status == 401 else None
            if previous is None:
                raise
        logger.warning("Dify refused the new key of app %r; used the previous one (its grace still runs)", app.name)
        return previous, await call(previous)

    def headers(self, app: DifyApp, *, sse: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {app.api_key}"}
        if sse:
            headers["Accept"] = "text/event-stream"
        return headers

    @staticmethod
    def build_payload(app: DifyApp, request: AskRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for `request`. Always `response_mode=streaming`."""
        body: dict[str, Any] = {"inputs": dict(request.inputs), "user": request.user, "response_mode": "streaming"}
        if request.files:
            body["files"] = [dict(item) for item in request.files]
        if app.mode == "workflow":
            path = f"/workflows/{request.workflow_id}/run" if request.workflow_id else "/workflows/run"
            return path, body
        if app.mode == "completion":
            if request.query:
                body["query"] = request.query
            return "/completion-messages", body
        assert app.mode in CHAT_MODES
        body["query"] = request.query
        if request.conversation_id:  # omitted, never "": newer Dify rejects "" (LangBot#1857)
            body["conversation_id"] = request.conversation_id
        if request.auto_generate_name is not None:
            body["auto_generate_name"] = request.auto_generate_name
        if request.workflow_id and app.mode == "advanced-chat":
            body["workflow_id"] = request.workflow_id
        return "/chat-messages", body

    async def with_retries(
        self, app: DifyApp, attempt: Callable[[], Awaitable[T]], deadline: float
    ) -> tuple[T, Ticket]:
        """Run `attempt` under the app's breaker, retrying retryable errors with backoff.

        Returns the result with its breaker ticket, which the caller settles (with `judge`) once
        it knows how the call ended: a stream is only a success once its answer completed.
        """
        breaker = self.breakers.get(app.name, app.base_url)

        async def once() -> tuple[T, Ticket]:
            ticket = breaker.acquire()
            try:
                result = await attempt()
            except UpstreamError as error:
                self.judge(ticket, error)
                raise
            except BaseException:  # cancelled, or the gateway's own limits (Overloaded)
                ticket.release()
                raise
            return result, ticket

        def log(number: int, error: UpstreamError, delay: float) -> None:
            logger.info("Dify app %r attempt %d failed (%s); retrying in %.2f s", app.name, number, error, delay)

        return await self.retry.call(
            once, sleep=self.clock.sleep, rand=self._rng.random, deadline=deadline, on_retry=log
        )

    @staticmethod
    def judge(ticket: Ticket, error: UpstreamError | None, *, completed: bool = False) -> None:
        """Settle a call's breaker ticket: completed, failed (only if the app is down), or neither
        (abandoned, a per-request error, or the caller's own mistake)."""
        if error is not None and counts_against_app(error):
            ticket.failure()
        elif error is None and completed:
            ticket.success()
        else:
            ticket.release()

    def error_from_response(self, app: DifyApp, response: httpx.Response, body: bytes) -> UpstreamError:
        """Classify a non-200 answer from its `{code, message, status}` envelope."""
        code: str | None = None
        message = response.reason_phrase
        envelope = _json_body(body)
        if isinstance(envelope, dict):
            code = envelope.get("code") if isinstance(envelope.get("code"), str) else None
            message = str(envelope.get("message") or message)
        return classify(response.status_code, code, message, app=app.name)

    def http_for(self, app: DifyApp) -> httpx.AsyncClient:
        """The client for `app`: the upstream guard's when a workspace token set its base URL."""
        if not app.guarded:
            return self.http
        if self.guarded_http is None:
            raise ConfigurationError(f"app '{app.name}' needs the upstream guard, and this client has none")
        return self.guarded_http

    def transport_error(self, app: DifyApp, exc: httpx.TransportError) -> UpstreamError | Overloaded:
        """Map a network failure before the first event: all retryable (dify-api.md §5), except a
        wait for one of our own connection slots, which is `Overloaded` (not the app's fault).
        Refused connections and connect timeouts mark the app `unreachable` (its breaker counts them)."""
        if isinstance(exc, httpx.PoolTimeout):
            return Overloaded(
                f"no free connection to Dify app '{app.name}': the gateway is at its connection limit",
                retry_after=OVERLOAD_RETRY_AFTER,
                app=app.name,
            )
        if isinstance(exc, httpx.TimeoutException) and not _mislabelled_timeout(exc):
            phase = {
                httpx.ConnectTimeout: "connecting to",
                httpx.ReadTimeout: "waiting for",
                httpx.WriteTimeout: "sending to",
            }.get(type(exc), "talking to")
            return UpstreamTimeout(
                f"timed out {phase} Dify app '{app.name}'",
                retryable=True,
                unreachable=isinstance(exc, httpx.ConnectTimeout),
                app=app.name,
            )
        cause = exc.__cause__ if _mislabelled_timeout(exc) else exc
        # aiohttp's ClientConnectorError: refused, DNS, no route (a broken connection is not that).
        unreachable = isinstance(cause, httpx.ConnectError | aiohttp.ClientConnectorError)
        message = f"could not reach Dify app '{app.name}' ({type(cause).__name__})"
        return UpstreamError(message, retryable=True, unreachable=unreachable, app=app.name)

    async def _get_json(self, app: DifyApp, path: str) -> dict[str, Any]:
        def attempt_with(app: DifyApp) -> Callable[[], Awaitable[dict[str, Any]]]:
            return lambda: attempt(app)

        async def attempt(app: DifyApp) -> dict[str, Any]:
            try:
                response = await self.http_for(app).get(app.url(path), headers=self.headers(app), timeout=self.timeout)
            except httpx.TransportError as exc:
                raise self.transport_error(app, exc) from exc
            if response.status_code != 200:
                raise self.error_from_response(app, response, response.content)
            body = _json_body(response.content)
            if not isinstance(body, dict):
                raise UpstreamError(f"Dify app '{app.name}' sent a non-object JSON body for {path}", app=app.name)
            return body

        deadline = anyio.current_time() + self.deadline
        with anyio.CancelScope(deadline=deadline):
            _, (body, ticket) = await self.keyed(
                app, lambda keyed: self.with_retries(keyed, attempt_with(keyed), deadline)
            )
            ticket.success()
            return body
        raise UpstreamTimeout(f"no answer from Dify app '{app.name}' within {self.deadline:g} s", app=app.name)
