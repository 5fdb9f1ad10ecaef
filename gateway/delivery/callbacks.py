"""Signed callback delivery: one Standard Webhooks POST to a user-supplied URL, classified.

`CallbackSender.send` makes exactly one attempt and says what happened as an `Outcome`; when to
try again is `gateway.delivery.retry`'s business, and storing attempts is the caller's. The
rules (platforms.md §4.4, security.md §6):

- Only 2xx is success. 410 Gone stops delivery for good; a 3xx is a failure and is never
  followed; every other answer (4xx included) and every network failure is retried.
- The URL is checked before anything is sent, and the pinned session checks the resolved
  addresses again at connect time, so a non-public address is refused, not retried.
- Every attempt is signed afresh: same `webhook-id`, new `webhook-timestamp`.
- The receiver's response body is never read beyond a small limit and never reported:
  `Outcome.error` is a short fixed phrase that is safe to store and to show the operator.
"""

from __future__ import annotations

import json
import math
import re
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import aiohttp
import anyio

from gateway.clock import Clock
from gateway.exceptions import BadRequest
from gateway.retry_after import retry_after_seconds
from gateway.security.pinned_session import PinnedSession
from gateway.security.signatures import standard_webhook_headers
from gateway.security.ssrf import NON_PUBLIC, ParsedUrl, UrlPolicy, check_url_syntax

__all__ = [
    "DEFAULT_USER_AGENT",
    "MAX_RESPONSE_BYTES",
    "CallbackSender",
    "Outcome",
    "OutcomeKind",
    "callback_payload",
]

OutcomeKind = Literal["delivered", "retry", "gone", "refused"]

DEFAULT_USER_AGENT = "dify-gateway-callbacks/1"
MAX_RESPONSE_BYTES = 64 * 1024  # read (and discard) at most this much of a response body
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_UNRESOLVED = "callback host could not be resolved"  # ssrf.system_resolver's message
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
# Set by us on every request; a caller's extra headers can't replace them. Host, length and
# framing headers are dropped so extras can't pick another virtual host or smuggle a request.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-type", "user-agent"}
    | {"webhook-id", "webhook-timestamp", "webhook-signature"}
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one delivery attempt came to.

    - `delivered`: the receiver answered 2xx.
    - `retry`: any other answer or a network failure; try again later (see `retry_after`).
    - `gone`: the receiver answered 410; make no more attempts (disable the subscription).
    - `refused`: the URL or its resolved address is not allowed; nothing was sent.

    `error` is empty when delivered, otherwise a short phrase ("HTTP 503", "timed out",
    "address not allowed") that never contains the response body, the URL's path or a secret.
    """

    kind: OutcomeKind
    status: int | None = None
    retry_after: float | None = None
    error: str = ""


class CallbackSender:
    """Sends signed callbacks through an SSRF-safe session, one attempt per `send`.

    Without `session`, the sender builds its own `PinnedSession(policy)` (aiohttp: a tenth of the
    CPU per request of httpx, with ssrf.py's rules as `PinnedTransport` applies them, one
    keep-alive pool per target and the checked DNS answer reused within its TTL) and closes it in
    `aclose()`. A given `session` (one with a resolver of its own, say) must have the same
    `policy`, and stays the caller's to close; the sender's `timeout` applies, not the session's.
    Usable as an async context manager.
    """

    def __init__(
        self,
        *,
        policy: UrlPolicy,
        clock: Clock,
        timeout: float = 15.0,
        session: PinnedSession | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if session is not None and session.policy != policy:
            raise ValueError("the session must have the sender's policy")  # it skips the URL check the sender made
        self._policy = policy
        self._clock = clock
        self._timeout = timeout
        self._user_agent = user_agent
        self._owns_session = session is None
        self._session = PinnedSession(policy, timeout=timeout) if session is None else session

    async def __aenter__(self) -> CallbackSender:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session if this sender created it."""
        if self._owns_session:
            await self._session.aclose()

    async def send(
        self,
        url: str,
        body: bytes,
        *,
        msg_id: str,
        secrets: Sequence[bytes],
        headers: Mapping[str, str] | None = None,
    ) -> Outcome:
        """POST `body` to `url`, signed with every secret in `secrets`, and classify the answer.

        `msg_id` is the `webhook-id`: pass the same one on every attempt at the same message.
        `headers` are extra request headers (e.g. legacy ones kept for migration); they can't
        replace the signature, content-type, user-agent, host or framing headers. Never raises
        for anything the URL or the receiver does; raises ValueError for an unusable `msg_id`
        or empty `secrets`, which are the caller's bugs.
        """
        try:
            checked = check_url_syntax(url, self._policy)
        except BadRequest as exc:
            # check_url_syntax's messages name the rule, never the URL, so they are safe to show.
            return Outcome("refused", error=exc.message)
        request_headers = {
            name.lower(): value for name, value in (headers or {}).items() if name.lower() not in _RESERVED_HEADERS
        }
        request_headers["content-type"] = "application/json"
        request_headers["user-agent"] = self._user_agent
        # A new timestamp per attempt, so a receiver's replay window never rejects a late retry.
        request_headers.update(standard_webhook_headers(secrets, msg_id, int(self._clock.time()), body))
        try:
            return await self._post(url, checked, body, request_headers)
        except BadRequest as exc:  # raised by the pinned session's connect-time address check
            if exc.message == NON_PUBLIC:
                return Outcome("refused", error="address not allowed")
            if exc.message == _UNRESOLVED:  # DNS trouble may pass: try again later
                return Outcome("retry", error="host could not be resolved")
            return Outcome("refused", error="URL not allowed")
        except TimeoutError:
            return Outcome("retry", error="timed out")
        except aiohttp.ClientConnectorError as exc:  # (TLS errors included)
            return Outcome("retry", error=_connect_error(exc))
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError):  # no answer, or not HTTP
            return Outcome("retry", error="no valid HTTP response")
        except aiohttp.ClientError:  # read/write errors, a reset connection
            return Outcome("retry", error="connection error")

    async def _post(self, url: str, checked: ParsedUrl, body: bytes, headers: dict[str, str]) -> Outcome:
        outcome: Outcome | None = None
        # aiohttp's timeout (the same seconds, started a little later) bounds the whole exchange
        # too; this deadline is what lets one hit while the body is discarded, after the status is
        # known, leave the outcome as it is.
        with anyio.move_on_after(self._timeout):
            post = self._session.post(url, content=body, headers=headers, checked=checked, timeout=self._timeout)
            async with post as response:
                outcome = self._classify(response.status, response.headers.get("retry-after"))
                await _drain(response.content.iter_any())
        if outcome is None:
            raise TimeoutError
        return outcome

    def _classify(self, status: int, retry_after_header: str | None) -> Outcome:
        if 200 <= status < 300:
            return Outcome("delivered", status=status)
        if status == 410:
            return Outcome("gone", status=status, error="HTTP 410 (gone)")
        if 300 <= status < 400:
            return Outcome("retry", status=status, error=f"redirect ({status}) not followed")
        retry_after = None
        if status in _RETRY_AFTER_STATUSES:
            # Uncapped: the schedule caps what a receiver may ask (next_callback_delay).
            retry_after = retry_after_seconds(retry_after_header, now=self._clock.time(), default=None, cap=math.inf)
        return Outcome("retry", status=status, retry_after=retry_after, error=f"HTTP {status}")


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read and discard up to MAX_RESPONSE_BYTES of the body, so a short answer can keep the
    connection alive; a longer one is cut off (closing the connection) instead of buffered.

    Raw bytes: no decompression, so a gzip bomb stays small. Errors here don't change the outcome.
    """
    seen = 0
    try:
        async for chunk in chunks:
            seen += len(chunk)
            if seen >= MAX_RESPONSE_BYTES:
                break
    except (aiohttp.ClientError, TimeoutError):
        pass


def _connect_error(exc: BaseException) -> str:
    """A short reason for a failed connection, from the OS errors aiohttp wraps."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ssl.SSLCertVerificationError):
            return "TLS certificate not trusted"
        if isinstance(current, ssl.SSLError):
            return "TLS error"
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return "connection failed"


def callback_payload(event_type: str, data: Mapping[str, Any], *, timestamp: float) -> bytes:
    """The Standard Webhooks body `{"type": ..., "timestamp": ..., "data": {...}}` as compact UTF-8 JSON.

    `event_type` is dot-delimited `[A-Za-z0-9_]` (e.g. "run.completed"); `timestamp` is Unix
    seconds, written as RFC 3339 UTC with microseconds and "Z". Raises ValueError for a bad
    type, a non-finite timestamp or NaN/infinity in `data`, TypeError for data JSON can't hold.
    Keep payloads under 20 kB (platforms.md §4.4): link to large things instead.
    """
    if not isinstance(event_type, str) or _EVENT_TYPE.fullmatch(event_type) is None:
        raise ValueError("an event type must be dot-delimited letters, digits and underscores")
    if not math.isfinite(timestamp):
        raise ValueError("a callback timestamp must be finite")
    when = datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="microseconds")
    document = {"type": event_type, "timestamp": when.replace("+00:00", "Z"), "data": dict(data)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
