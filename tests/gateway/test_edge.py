"""The edge layer (`gateway.http.middleware`): where it sits, the body deadline, the last-resort error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.clock import SystemClock
from gateway.exceptions import RequestTimeout
from gateway.http.app import create_app
from gateway.http.middleware import EdgeMiddleware
from tests.support.gateway import make_settings

pytestmark = pytest.mark.anyio

HTTP: Scope = {"type": "http", "method": "POST", "path": "/other", "headers": [], "query_string": b""}


def edge(app: object, *, timeout: float = 10.0, endpoint: object = None) -> EdgeMiddleware:
    async def no_endpoint(request: Request) -> Response:
        raise AssertionError("not an endpoint request")

    return EdgeMiddleware(
        app,  # type: ignore[arg-type]
        endpoint=endpoint or no_endpoint,  # type: ignore[arg-type]
        clock=SystemClock(),
        max_bytes=1024,
        timeout=timeout,
    )


class Client:
    """The server side of one request: `receive` hands out what the client has sent so far."""

    def __init__(self, *messages: Message) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        for message in messages:
            self.inbox.put_nowait(message)
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_the_edge_wraps_starlettes_own_error_layer(tmp_path: Path) -> None:
    """Endpoint requests (the ack path) skip Starlette's error layer and its send wrapper."""
    app = create_app(make_settings(tmp_path), run_workers=False)
    assert isinstance(app.build_middleware_stack(), EdgeMiddleware)


async def test_an_endpoint_error_that_escapes_the_ingress_is_still_a_json_500() -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    client = Client()
    scope = {**HTTP, "path": "/e/tok"}
    await edge(None, endpoint=broken)(scope, client.receive, client.send)
    start, sent = client.sent
    assert start["status"] == 500
    assert json.loads(sent["body"]) == {"error": {"code": "internal_error", "message": "internal error"}}


async def test_a_body_that_stops_arriving_is_cut_at_the_deadline() -> None:
    outcome: list[BaseException | Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        outcome.append(await receive())
        try:
            await receive()  # the rest never comes
        except RequestTimeout as exc:
            outcome.append(exc)

    client = Client(body(b"a", more=True))
    await edge(app, timeout=0.05)(dict(HTTP), client.receive, client.send)
    first, second = outcome
    assert first == body(b"a", more=True)
    assert isinstance(second, RequestTimeout)


async def test_the_deadline_ends_with_the_body() -> None:
    """Once the body is in, waiting for the disconnect is not cut by the body's deadline."""
    outcome: list[Message] = []
    client = Client(body(b"all"))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        outcome.append(await receive())
        await asyncio.sleep(0.1)  # past the deadline
        client.inbox.put_nowait({"type": "http.disconnect"})
        outcome.append(await receive())

    await edge(app, timeout=0.05)(dict(HTTP), client.receive, client.send)
    assert outcome == [body(b"all"), {"type": "http.disconnect"}]


async def test_a_read_after_the_deadline_gets_what_already_arrived_and_no_more() -> None:
    outcome: list[BaseException | Message] = []
    client = Client(body(b"a", more=True))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        outcome.append(await receive())  # arms the deadline
        await asyncio.sleep(0.1)  # the deadline passes between two reads
        client.inbox.put_nowait(body(b"b", more=True))
        outcome.append(await receive())  # there already: handed over
        try:
            await receive()  # would wait: too late
        except RequestTimeout as exc:
            outcome.append(exc)

    await edge(app, timeout=0.05)(dict(HTTP), client.receive, client.send)
    assert outcome[:2] == [body(b"a", more=True), body(b"b", more=True)]
    assert isinstance(outcome[2], RequestTimeout)


async def test_a_cancelled_body_read_is_a_cancellation_not_a_timeout() -> None:
    """A shutdown cancelling the request while it reads its body is not turned into a 408."""
    reading = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reading.set()
        await receive()

    client = Client()
    task = asyncio.create_task(edge(app, timeout=10.0)(dict(HTTP), client.receive, client.send))
    await reading.wait()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
