"""Signed callback delivery against a real loopback receiver that verifies with `standardwebhooks`."""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import quote

import anyio
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.clock import FakeClock
from gateway.delivery import callbacks
from gateway.delivery.callbacks import MAX_RESPONSE_BYTES, CallbackSender, Outcome, callback_payload
from gateway.exceptions import BadRequest
from gateway.security.pinned_session import PinnedSession
from gateway.security.signatures import new_webhook_secret, parse_webhook_secret
from gateway.security.ssrf import UrlPolicy
from tests.support.gateway import live_server, refused_port

pytestmark = [pytest.mark.anyio, pytest.mark.live]

LOOPBACK = UrlPolicy(allow_http=True, allowed_hosts=frozenset({"127.0.0.1"}))
SECRET_A = new_webhook_secret()
SECRET_B = new_webhook_secret()
SECRET_OTHER = new_webhook_secret()  # the receiver knows it; the sender never signs with it
KEY_A, KEY_B = parse_webhook_secret(SECRET_A), parse_webhook_secret(SECRET_B)
LEAK = "RECEIVER-PRIVATE-TEXT"  # in every non-2xx body: must never reach Outcome.error
QUERY_SECRET = "tok-QUERY-SECRET"  # in callback URLs' queries: must never reach Outcome.error
BODY = callback_payload("run.completed", {"answer": "héllo", "n": 1}, timestamp=1_700_000_000.5)
HUGE_LIMIT = 16 * 1024 * 1024  # the "endless" body still ends, so the server can always shut down


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: tuple[bool, ...]  # one per receiver secret: SECRET_A, SECRET_B, SECRET_OTHER


@dataclass
class Receiver:
    """A loopback webhook receiver; records every request and verifies it with the reference library."""

    secrets: Sequence[str] = (SECRET_A, SECRET_B, SECRET_OTHER)
    deliveries: list[Delivery] = field(default_factory=list)
    streamed: int = 0  # bytes /huge handed to the server
    hung_up: anyio.Event = field(default_factory=anyio.Event)  # /huge stopped before its end
    base: str = ""

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={QUERY_SECRET}"

    def paths(self) -> list[str]:
        return [d.path for d in self.deliveries]

    def _verify(self, secret: str, body: bytes, headers: dict[str, str]) -> bool:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            return False
        return True

    async def _record(self, request: Request) -> None:
        body = await request.body()
        headers = dict(request.headers)
        verified = tuple(self._verify(secret, body, headers) for secret in self.secrets)
        self.deliveries.append(Delivery(request.url.path, headers, body, verified))

    async def ok(self, request: Request) -> Response:
        await self._record(request)
        response = PlainTextResponse("ok")
        response.set_cookie("session", "from-receiver")
        return response

    async def status(self, request: Request) -> Response:
        await self._record(request)
        code = int(request.path_params["code"])
        headers = {}
        if "retry_after" in request.query_params:
            headers["retry-after"] = request.query_params["retry_after"]
        content = "" if code in (204, 304) else f"{LEAK}: {code}"
        return PlainTextResponse(content, status_code=code, headers=headers)

    async def redirect(self, request: Request) -> Response:
        await self._record(request)
        return RedirectResponse("/target", status_code=int(request.path_params["code"]))

    async def target(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("redirect target")

    async def slow(self, request: Request) -> Response:
        await self._record(request)
        with anyio.move_on_after(5):
            await request.receive()  # the body is read, so the next message is the sender hanging up
        return PlainTextResponse("too late")

    async def huge(self, request: Request) -> Response:
        await self._record(request)

        async def endless() -> AsyncIterator[bytes]:
            chunk = (LEAK * 4096).encode()
            try:
                while self.streamed < HUGE_LIMIT and not await request.is_disconnected():
                    self.streamed += len(chunk)
                    yield chunk
            finally:  # also when the response is cancelled on the disconnect
                if self.streamed < HUGE_LIMIT:
                    self.hung_up.set()

        code = int(request.query_params.get("status", "200"))
        return StreamingResponse(endless(), status_code=code, media_type="text/plain")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ok", self.ok, methods=["POST"]),
                Route("/status/{code:int}", self.status, methods=["POST"]),
                Route("/redirect/{code:int}", self.redirect, methods=["POST"]),
                Route("/target", self.target, methods=["GET", "POST"]),
                Route("/slow", self.slow, methods=["POST"]),
                Route("/huge", self.huge, methods=["POST"]),
            ]
        )


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope, so one receiver server serves the whole module


@pytest.fixture(scope="module")
async def receiver_server() -> AsyncIterator[Receiver]:
    rx = Receiver()
    async with live_server(rx.app()) as base:
        rx.base = base
        yield rx


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.deliveries.clear()
    receiver_server.streamed = 0
    receiver_server.hung_up = anyio.Event()
    return receiver_server


@pytest.fixture
def clock() -> FakeClock:
    # Near real time: the reference library checks the timestamp against its own clock (±5 min).
    return FakeClock(float(int(time.time())))


@pytest.fixture
async def sender(clock: FakeClock) -> AsyncIterator[CallbackSender]:
    async with CallbackSender(policy=LOOPBACK, clock=clock, timeout=5.0) as s:
        yield s


def assert_safe(outcome: Outcome) -> None:
    assert LEAK not in outcome.error
    assert QUERY_SECRET not in outcome.error
    assert SECRET_A not in outcome.error
    assert len(outcome.error) < 80


# -- delivered --------------------------------------------------------------------------------


async def test_delivered_and_verified_by_the_reference_library(
    receiver: Receiver, sender: CallbackSender, clock: FakeClock
) -> None:
    outcome = await sender.send(receiver.url("/ok"), BODY, msg_id="msg_abc123", secrets=[KEY_A])

    assert outcome == Outcome("delivered", status=200, retry_after=None, error="")
    [delivery] = receiver.deliveries
    assert delivery.verified == (True, False, False)
    assert delivery.body == BODY  # the exact bytes that were signed
    assert delivery.headers["webhook-id"] == "msg_abc123"
    assert delivery.headers["webhook-timestamp"] == str(int(clock.time()))
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["user-agent"] == "dify-gateway-callbacks/1"


async def test_two_secrets_during_rotation_both_verify(receiver: Receiver, sender: CallbackSender) -> None:
    outcome = await sender.send(receiver.url("/ok"), BODY, msg_id="msg_rotate", secrets=[KEY_A, KEY_B])

    assert outcome.kind == "delivered"
    [delivery] = receiver.deliveries
    assert delivery.verified == (True, True, False)
    assert [entry.split(",")[0] for entry in delivery.headers["webhook-signature"].split(" ")] == ["v1", "v1"]


async def test_every_attempt_has_the_same_id_and_a_new_timestamp(
    receiver: Receiver, sender: CallbackSender, clock: FakeClock
) -> None:
    first = await sender.send(receiver.url("/status/503"), BODY, msg_id="msg_same", secrets=[KEY_A])
    clock.advance(61)
    second = await sender.send(receiver.url("/ok"), BODY, msg_id="msg_same", secrets=[KEY_A])

    assert (first.kind, second.kind) == ("retry", "delivered")
    one, two = receiver.deliveries
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == "msg_same"
    assert int(two.headers["webhook-timestamp"]) - int(one.headers["webhook-timestamp"]) == 61
    assert one.verified[0] and two.verified[0]
    assert one.headers["webhook-signature"] != two.headers["webhook-signature"]


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
async def test_any_2xx_is_delivered(receiver: Receiver, sender: CallbackSender, code: int) -> None:
    outcome = await sender.send(receiver.url(f"/status/{code}"), BODY, msg_id="msg_2xx", secrets=[KEY_A])
    assert outcome == Outcome("delivered", status=code)


async def test_receivers_cookies_are_not_kept(receiver: Receiver, sender: CallbackSender) -> None:
    for _ in range(2):
        assert (await sender.send(receiver.url("/ok"), BODY, msg_id="msg_c", secrets=[KEY_A])).kind == "delivered"
    assert ["cookie" in d.headers for d in receiver.deliveries] == [False, False]


async def test_extra_headers_cannot_replace_protocol_headers(receiver: Receiver, sender: CallbackSender) -> None:
    extra = {
        "X-Legacy-Signature": "sha256=legacy",
        "Host": "internal.example",
        "Webhook-Id": "msg_forged",
        "Webhook-Signature": "v1,forged",
        "Content-Type": "text/plain",
        "User-Agent": "spoof",
        "Transfer-Encoding": "chunked",
    }
    outcome = await sender.send(receiver.url("/ok"), BODY, msg_id="msg_real", secrets=[KEY_A], headers=extra)

    assert outcome.kind == "delivered"
    [delivery] = receiver.deliveries
    assert delivery.headers["x-legacy-signature"] == "sha256=legacy"
    assert delivery.headers["host"] == receiver.base.removeprefix("http://")
    assert delivery.headers["webhook-id"] == "msg_real"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["user-agent"] == "dify-gateway-callbacks/1"
    assert "transfer-encoding" not in delivery.headers
    assert delivery.verified[0]


# -- answers that stop or retry ---------------------------------------------------------------


async def test_410_is_gone(receiver: Receiver, sender: CallbackSender) -> None:
    outcome = await sender.send(receiver.url("/status/410"), BODY, msg_id="msg_gone", secrets=[KEY_A])
    assert outcome == Outcome("gone", status=410, retry_after=None, error="HTTP 410 (gone)")
    assert_safe(outcome)


@pytest.mark.parametrize(
    ("code", "retry_after"),
    [
        (429, 7.0),  # Retry-After is honoured on 429 and 503
        (503, 7.0),
        (500, None),  # and ignored elsewhere
        (502, None),
        (504, None),
        (408, None),
        (400, None),  # a 4xx other than 410 is still retried (only 2xx is success)
        (401, None),
        (404, None),
        (413, None),
        (418, None),
    ],
)
async def test_failures_are_retried(
    receiver: Receiver, sender: CallbackSender, code: int, retry_after: float | None
) -> None:
    outcome = await sender.send(
        receiver.url(f"/status/{code}?retry_after=7"), BODY, msg_id="msg_retry", secrets=[KEY_A]
    )
    assert outcome == Outcome("retry", status=code, retry_after=retry_after, error=f"HTTP {code}")
    assert_safe(outcome)


async def test_503_without_retry_after(receiver: Receiver, sender: CallbackSender) -> None:
    outcome = await sender.send(receiver.url("/status/503"), BODY, msg_id="msg_503", secrets=[KEY_A])
    assert outcome == Outcome("retry", status=503, retry_after=None, error="HTTP 503")


@pytest.mark.parametrize(("offset", "expected"), [(120, 120.0), (-120, 0.0)])
async def test_retry_after_as_http_date(
    receiver: Receiver, sender: CallbackSender, clock: FakeClock, offset: int, expected: float
) -> None:
    date = formatdate(clock.time() + offset, usegmt=True)
    outcome = await sender.send(
        receiver.url(f"/status/429?retry_after={quote(date)}"), BODY, msg_id="msg_date", secrets=[KEY_A]
    )
    assert outcome.retry_after == expected


async def test_junk_retry_after_is_ignored(receiver: Receiver, sender: CallbackSender) -> None:
    outcome = await sender.send(receiver.url("/status/429?retry_after=soon"), BODY, msg_id="msg_j", secrets=[KEY_A])
    assert outcome == Outcome("retry", status=429, retry_after=None, error="HTTP 429")


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(receiver: Receiver, sender: CallbackSender, code: int) -> None:
    outcome = await sender.send(receiver.url(f"/redirect/{code}"), BODY, msg_id="msg_3xx", secrets=[KEY_A])

    assert outcome == Outcome("retry", status=code, error=f"redirect ({code}) not followed")
    assert receiver.paths() == [f"/redirect/{code}"]  # the target saw nothing


# -- network failures -------------------------------------------------------------------------


async def test_connection_refused_is_retried(sender: CallbackSender) -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}/ok?token={QUERY_SECRET}"
        outcome = await sender.send(url, BODY, msg_id="msg_refused", secrets=[KEY_A])
    assert outcome == Outcome("retry", error="connection refused")
    assert_safe(outcome)


async def test_timeout_is_retried(receiver: Receiver, clock: FakeClock) -> None:
    async with CallbackSender(policy=LOOPBACK, clock=clock, timeout=0.2) as sender:
        started = time.monotonic()
        outcome = await sender.send(receiver.url("/slow"), BODY, msg_id="msg_slow", secrets=[KEY_A])
    assert outcome == Outcome("retry", error="timed out")
    assert time.monotonic() - started < 2
    assert receiver.paths() == ["/slow"]


@pytest.mark.parametrize("status", [200, 500])
async def test_a_huge_response_body_is_not_read(receiver: Receiver, clock: FakeClock, status: int) -> None:
    async with CallbackSender(policy=LOOPBACK, clock=clock, timeout=5.0) as sender:
        started = time.monotonic()
        outcome = await sender.send(receiver.url(f"/huge?status={status}"), BODY, msg_id="msg_huge", secrets=[KEY_A])
        elapsed = time.monotonic() - started
        with anyio.fail_after(5):  # a sender that only stopped reading would leave it blocked in a write
            await receiver.hung_up.wait()

    assert outcome.kind == ("delivered" if status == 200 else "retry")
    assert outcome.status == status
    assert_safe(outcome)
    assert elapsed < 3
    # Cut off after MAX_RESPONSE_BYTES (64 KiB): the receiver, on the test's own event loop, gets
    # ~0.25 MiB out before it hears; a sender that read 1 MiB of it would be over.
    assert receiver.streamed < 16 * MAX_RESPONSE_BYTES


async def raw_exchange(
    sender: CallbackSender, *script: bytes | float, reset: bool = False, hang: bool = False
) -> Outcome:
    """Send one callback to a bare TCP server that plays `script` (bytes to write, seconds to wait),
    then closes (with a RST if `reset`) or, if `hang`, keeps the connection open and silent."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            for step in script:
                if isinstance(step, bytes):
                    await stream.send(step)
                else:
                    await anyio.sleep(step)
            if hang:
                await anyio.sleep_forever()
            if reset:  # SO_LINGER 0: close() sends a RST instead of a FIN
                raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        outcome = await sender.send(f"http://127.0.0.1:{port}/x", BODY, msg_id="msg_raw", secrets=[KEY_A])
        tg.cancel_scope.cancel()
    return outcome


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage that is not HTTP\r\n\r\n",
        b"",  # accept, then close without a word
    ],
)
async def test_no_valid_http_response_is_retried(sender: CallbackSender, answer: bytes) -> None:
    assert await raw_exchange(sender, answer) == Outcome("retry", error="no valid HTTP response")


async def test_connection_reset_is_retried(sender: CallbackSender) -> None:
    assert await raw_exchange(sender, reset=True) == Outcome("retry", error="connection error")


@pytest.mark.parametrize("reset", [False, True])
async def test_a_cut_off_body_after_a_2xx_is_still_delivered(sender: CallbackSender, reset: bool) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial"
    assert await raw_exchange(sender, answer, reset=reset) == Outcome("delivered", status=200)


async def test_the_deadline_covers_the_whole_exchange(clock: FakeClock) -> None:
    # Each byte comes well within any per-read timeout; only the overall deadline stops it.
    drip = [step for byte in b"HTTP/1.1 200 OK\r\n" for step in (bytes([byte]), 0.05)]
    async with CallbackSender(policy=LOOPBACK, clock=clock, timeout=0.3) as sender:
        started = time.monotonic()
        outcome = await raw_exchange(sender, *drip, hang=True)
    assert outcome == Outcome("retry", error="timed out")
    assert time.monotonic() - started < 1


async def test_a_2xx_whose_body_never_ends_is_delivered_at_the_deadline(clock: FakeClock) -> None:
    async with CallbackSender(policy=LOOPBACK, clock=clock, timeout=0.3) as sender:
        started = time.monotonic()
        outcome = await raw_exchange(sender, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", hang=True)
    assert outcome == Outcome("delivered", status=200)
    assert time.monotonic() - started < 1


async def test_the_senders_deadline_applies_to_a_given_session(clock: FakeClock) -> None:
    session = PinnedSession(LOOPBACK, timeout=0.1)  # shorter than the sender's: not the one that counts
    async with CallbackSender(policy=LOOPBACK, clock=clock, timeout=0.5, session=session) as sender:
        outcome = await raw_exchange(sender, 0.3, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", hang=True)
    await session.aclose()
    assert outcome == Outcome("delivered", status=200)


async def test_tls_to_a_plain_http_port_is_retried(receiver: Receiver, clock: FakeClock) -> None:
    async with CallbackSender(policy=LOOPBACK, clock=clock, timeout=5.0) as sender:
        url = receiver.base.replace("http://", "https://") + "/ok"
        outcome = await sender.send(url, BODY, msg_id="msg_tls", secrets=[KEY_A])
    assert outcome == Outcome("retry", error="TLS error")


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        (ssl.SSLCertVerificationError("certificate verify failed"), "TLS certificate not trusted"),
        (ssl.SSLError("wrong version number"), "TLS error"),
        (ConnectionRefusedError(111, "Connect call failed"), "connection refused"),
        (OSError("network is unreachable"), "connection failed"),
    ],
)
def test_connect_error_reasons(chain: BaseException, expected: str) -> None:
    try:
        try:
            raise chain
        except BaseException as cause:
            raise OSError("All connection attempts failed") from cause
    except OSError as exc:
        exc.__context__ = exc  # a cycle must not loop forever
        assert expected in callbacks._connect_error(exc)


async def test_unresolvable_host_is_retried(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    async def no_such_host(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(anyio, "getaddrinfo", no_such_host)  # what ssrf.system_resolver calls
    policy = UrlPolicy(allow_http=True)
    async with CallbackSender(policy=policy, clock=clock) as sender:
        outcome = await sender.send("http://no-such-host.example/x", BODY, msg_id="msg_dns", secrets=[KEY_A])
    assert outcome == Outcome("retry", error="host could not be resolved")


# -- refused before any connection -------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "url", "error"),
    [
        (UrlPolicy(), "http://127.0.0.1:{port}/ok", "callback URL must use https"),  # http not allowed
        (LOOPBACK, "file:///etc/passwd", "callback URL must use http or https"),
        (LOOPBACK, "gopher://127.0.0.1:{port}/", "callback URL must use http or https"),
        (LOOPBACK, "http://user:pw@127.0.0.1:{port}/ok", "callback URL must not contain a user name or password"),
        (UrlPolicy(allow_http=True), "http://127.0.0.1:{port}/ok", "address not allowed"),  # not allow-listed
        (UrlPolicy(allow_http=True), "http://169.254.169.254/latest/meta-data/", "address not allowed"),
        (UrlPolicy(allow_http=True), "http://[::ffff:127.0.0.1]:{port}/ok", "address not allowed"),
        (UrlPolicy(allow_http=True), "http://[::ffff:0:7f00:1]:{port}/ok", "address not allowed"),  # RFC 6145
        (UrlPolicy(allow_http=True), "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "address not allowed"),
        (LOOPBACK, "http://169.254.169.254/latest/meta-data/", "address not allowed"),
        (UrlPolicy(allow_http=True, allowed_ports=frozenset({443})), "http://1.1.1.1/", "port 80 is not allowed"),
    ],
)
async def test_urls_the_policy_refuses_are_never_contacted(
    receiver: Receiver, clock: FakeClock, policy: UrlPolicy, url: str, error: str
) -> None:
    port = int(receiver.base.rsplit(":", 1)[1])
    async with CallbackSender(policy=policy, clock=clock) as sender:
        outcome = await sender.send(url.format(port=port), BODY, msg_id="msg_ssrf", secrets=[KEY_A])
        # Refused before any connection: the sender's aiohttp session was never even opened.
        assert not sender._session.opened

    assert outcome.kind == "refused"
    assert outcome.status is None and outcome.retry_after is None
    assert error in outcome.error
    assert receiver.deliveries == []


# 127.0.0.1 itself (localtest.me, a rebinding host on its second lookup), then DNS64 or hostile AAAA
# answers that reach it through a translator or a tunnel.
@pytest.mark.parametrize(
    "answer", ["127.0.0.1", "::ffff:0:7f00:1", "64:ff9b::7f00:1", "64:ff9b:1::7f00:1", "2002:7f00:1::1"]
)
async def test_a_name_resolving_to_loopback_is_refused(receiver: Receiver, clock: FakeClock, answer: str) -> None:
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return [answer]

    policy = UrlPolicy(allow_http=True)
    port = int(receiver.base.rsplit(":", 1)[1])
    session = PinnedSession(policy, timeout=5.0, resolver=resolver)
    async with CallbackSender(policy=policy, clock=clock, session=session) as sender:
        outcome = await sender.send(f"http://localtest.me:{port}/ok", BODY, msg_id="msg_dns", secrets=[KEY_A])
    await session.aclose()

    assert outcome == Outcome("refused", error="address not allowed")
    assert lookups == ["localtest.me"]
    assert receiver.deliveries == []


async def test_other_connect_time_refusals(clock: FakeClock) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise BadRequest("something else went wrong", host=host)

    policy = UrlPolicy(allow_http=True)
    session = PinnedSession(policy, timeout=5.0, resolver=resolver)
    async with CallbackSender(policy=policy, clock=clock, session=session) as sender:
        outcome = await sender.send("http://odd.example/x", BODY, msg_id="msg_odd", secrets=[KEY_A])
    await session.aclose()
    assert outcome == Outcome("refused", error="URL not allowed")


# -- the sender itself ------------------------------------------------------------------------


@pytest.mark.parametrize(("msg_id", "secrets"), [("msg.dotted", [KEY_A]), ("", [KEY_A]), ("msg_ok", [])])
async def test_caller_bugs_raise_before_sending(
    receiver: Receiver, sender: CallbackSender, msg_id: str, secrets: list[bytes]
) -> None:
    with pytest.raises(ValueError):
        await sender.send(receiver.url("/ok"), BODY, msg_id=msg_id, secrets=secrets)
    assert receiver.deliveries == []


async def test_session_ownership(clock: FakeClock) -> None:
    own = CallbackSender(policy=LOOPBACK, clock=clock)
    await own.aclose()
    assert own._session.is_closed

    session = PinnedSession(LOOPBACK, timeout=5.0)
    async with CallbackSender(policy=LOOPBACK, clock=clock, session=session):
        pass
    assert not session.is_closed  # the caller's session stays open
    await session.aclose()


async def test_a_session_with_another_policy_is_refused(clock: FakeClock) -> None:
    session = PinnedSession(UrlPolicy(), timeout=5.0)  # https only: the sender's LOOPBACK allows http
    with pytest.raises(ValueError):
        CallbackSender(policy=LOOPBACK, clock=clock, session=session)
    await session.aclose()


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
def test_timeout_must_be_positive(clock: FakeClock, timeout: float) -> None:
    with pytest.raises(ValueError):
        CallbackSender(policy=LOOPBACK, clock=clock, timeout=timeout)


# -- payload ----------------------------------------------------------------------------------


def test_payload_is_compact_utf8_json() -> None:
    assert BODY == (
        b'{"type":"run.completed","timestamp":"2023-11-14T22:13:20.500000Z","data":{"answer":"h\xc3\xa9llo","n":1}}'
    )
    assert (
        callback_payload("ping", {}, timestamp=0)
        == b'{"type":"ping","timestamp":"1970-01-01T00:00:00.000000Z","data":{}}'
    )


async def test_payload_parses_with_the_reference_library(receiver: Receiver, sender: CallbackSender) -> None:
    body = callback_payload("message.created", {"nested": {"list": [1, 2]}}, timestamp=1_700_000_000)
    await sender.send(receiver.url("/ok"), body, msg_id="msg_json", secrets=[KEY_A])
    parsed = Webhook(SECRET_A).verify(receiver.deliveries[0].body, receiver.deliveries[0].headers)
    assert parsed == {
        "type": "message.created",
        "timestamp": "2023-11-14T22:13:20.000000Z",
        "data": {"nested": {"list": [1, 2]}},
    }


@pytest.mark.parametrize("event_type", ["", "a..b", ".a", "a.", "a b", "a-b", "é", "a/b"])
def test_payload_rejects_bad_event_types(event_type: str) -> None:
    with pytest.raises(ValueError):
        callback_payload(event_type, {}, timestamp=0)


def test_payload_rejects_non_finite_values() -> None:
    with pytest.raises(ValueError):
        callback_payload("a.b", {}, timestamp=float("nan"))
    with pytest.raises(ValueError):
        callback_payload("a.b", {"x": float("inf")}, timestamp=0)
