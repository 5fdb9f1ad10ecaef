"""`PinnedSession`: aiohttp with the SSRF rules of `PinnedTransport`, against a real loopback receiver."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.clock import FakeClock
from gateway.delivery.callbacks import CallbackSender
from gateway.exceptions import BadRequest
from gateway.security.pinned_session import PinnedSession
from gateway.security.signatures import new_webhook_secret, parse_webhook_secret
from gateway.security.ssrf import NON_PUBLIC, UrlPolicy
from tests.support.gateway import live_server

pytestmark = [pytest.mark.anyio, pytest.mark.live]

KEY = parse_webhook_secret(new_webhook_secret())
LOOPBACK = UrlPolicy(allow_http=True, allowed_hosts=frozenset({"127.0.0.1"}))


@dataclass
class Receiver:
    base: str = ""
    ports: list[int] = field(default_factory=list)  # the client port of each request: one per connection

    def app(self) -> Starlette:
        async def ok(request: Request) -> Response:
            await request.body()
            self.ports.append(request.client.port if request.client else 0)
            close = request.url.path == "/close"  # each request on a connection of its own
            return Response("ok", headers={"connection": "close"} if close else {})

        return Starlette(routes=[Route("/ok", ok, methods=["POST"]), Route("/close", ok, methods=["POST"])])

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver of its own for each test (the ports it records tell connections apart)."""
    rx = Receiver()
    async with live_server(rx.app()) as base:
        rx.base = base
        yield rx


@pytest.mark.parametrize(
    ("policy", "url", "error"),
    [
        (UrlPolicy(), "http://127.0.0.1:{port}/ok", "callback URL must use https"),
        (LOOPBACK, "http://user:pw@127.0.0.1:{port}/ok", "callback URL must not contain a user name or password"),
        (UrlPolicy(allow_http=True), "http://127.0.0.1:{port}/ok", "address not allowed"),  # not allow-listed
        (UrlPolicy(allow_http=True), "http://169.254.169.254/latest/meta-data/", "address not allowed"),
        (UrlPolicy(allow_http=True), "http://[::ffff:127.0.0.1]:{port}/ok", "address not allowed"),
        (UrlPolicy(allow_http=True), "http://[::ffff:0:7f00:1]:{port}/ok", "address not allowed"),
        (UrlPolicy(allow_http=True), "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "address not allowed"),
        (UrlPolicy(allow_http=True), "http://2130706433:{port}/ok", "address not allowed"),  # 127.0.0.1 as a number
        (UrlPolicy(allow_http=True), "http://127.1:{port}/ok", "address not allowed"),
        (UrlPolicy(allow_http=True, allowed_ports=frozenset({443})), "http://1.1.1.1/", "port 80 is not allowed"),
    ],
)
async def test_urls_the_policy_refuses_are_never_contacted(
    receiver: Receiver, policy: UrlPolicy, url: str, error: str
) -> None:
    clock = FakeClock(time.time())
    async with CallbackSender(policy=policy, clock=clock, timeout=5.0) as sender:  # its own PinnedSession
        outcome = await sender.send(url.format(port=receiver.port), b"{}", msg_id="msg_ssrf", secrets=[KEY])
    assert outcome.kind == "refused" and error in outcome.error
    assert receiver.ports == []


@pytest.mark.parametrize("answer", ["127.0.0.1", "::ffff:0:7f00:1", "64:ff9b::7f00:1", "10.0.0.1"])
async def test_a_name_resolving_to_a_non_public_address_is_never_contacted(receiver: Receiver, answer: str) -> None:
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return [answer]

    session = PinnedSession(UrlPolicy(allow_http=True), timeout=5.0, resolver=resolver)
    try:
        with pytest.raises(BadRequest) as refused:
            async with session.post(f"http://localtest.me:{receiver.port}/ok", content=b"{}", headers={}):
                pass
    finally:
        await session.aclose()
    assert refused.value.message == NON_PUBLIC
    assert lookups == ["localtest.me"] and receiver.ports == []


async def test_keep_alive_connections_are_reused_and_a_checked_lookup_serves_new_ones(receiver: Receiver) -> None:
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    policy = UrlPolicy(allow_http=True, allowed_hosts=frozenset({"receiver.test"}))
    session = PinnedSession(policy, timeout=5.0, resolver=resolver)
    try:
        for path in ["/ok", "/ok", "/ok", "/close", "/close", "/close"]:
            async with session.post(f"http://receiver.test:{receiver.port}{path}", content=b"{}", headers={}) as r:
                assert r.status == 200
                await r.read()
    finally:
        await session.aclose()
    assert session.is_closed
    # The first four share one kept-alive connection; each "/close" after it needs a new one, all
    # to the address checked by the one lookup (reused within its TTL).
    assert len(set(receiver.ports[:4])) == 1 and len(set(receiver.ports[3:])) == 3
    assert lookups == ["receiver.test"]


async def test_a_closed_session_sends_nothing(receiver: Receiver) -> None:
    session = PinnedSession(LOOPBACK, timeout=5.0)
    await session.aclose()
    with pytest.raises(RuntimeError):
        async with session.post(f"{receiver.base}/ok", content=b"{}", headers={}):
            pass
    assert receiver.ports == []
