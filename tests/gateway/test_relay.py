"""A plugin's streamed body written by the request's own task (gateway/http/ingress.py `_Relay`).

Driven as uvicorn drives it (ASGI spec 2.3: `send` does not fail when the client has gone, only
`receive` tells), with the ingress's `Departures` watching for the client leaving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.http.ingress import Departures, to_starlette
from gateway.plugin import Response

pytestmark = pytest.mark.anyio

SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "method": "GET", "headers": []}


class Client:
    """ASGI `receive`/`send` of one client: `leave()` makes `receive` answer the disconnect."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.reading = asyncio.Event()  # a body part was sent

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.reading.set()

    def leave(self) -> None:
        self.gone.set()

    def bodies(self) -> list[tuple[bytes, bool]]:
        return [(m["body"], m["more_body"]) for m in self.sent if m["type"] == "http.response.body"]


async def test_the_body_is_relayed_by_the_requests_own_task_without_helpers() -> None:
    client = Client()
    seen: list[tuple[asyncio.Task[Any] | None, int]] = []

    async def body() -> AsyncIterator[bytes]:
        for part in (b"a", b"b"):
            seen.append((asyncio.current_task(), len(asyncio.all_tasks())))
            yield part

    response = to_starlette(Response(200, body(), [("x-one", "1")], "text/event-stream"), Departures())
    tasks_before = len(asyncio.all_tasks())
    await response(SCOPE, client.receive, client.send)  # type: ignore[arg-type]
    start = client.sent[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"x-one"] == b"1" and headers[b"content-type"].startswith(b"text/event-stream")
    assert b"content-length" not in headers
    assert client.bodies() == [(b"a", True), (b"b", True), (b"", False)]
    # The caller's task ran the body, and no task (task group, disconnect listener) was added for it.
    assert all(task is asyncio.current_task() and count == tasks_before for task, count in seen)


async def test_a_client_leaving_midway_cancels_the_body() -> None:
    client = Client()
    cleaned = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await asyncio.Event().wait()  # an answer still coming
            yield b"never"
        finally:
            cleaned.set()

    response = to_starlette(Response(200, endless(), [], "text/plain"), Departures())
    relay = asyncio.ensure_future(response(SCOPE, client.receive, client.send))  # type: ignore[arg-type]
    await client.reading.wait()
    client.leave()
    await relay  # ends quietly: nobody is reading
    assert cleaned.is_set()
    assert client.bodies() == [(b"first", True)]


async def test_a_body_failing_midway_ends_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    client = Client()

    async def failing() -> AsyncIterator[bytes]:
        yield b"part"
        raise RuntimeError("the plugin broke")

    response = to_starlette(Response(200, failing(), [], "text/plain"), Departures())
    with caplog.at_level(logging.ERROR, logger="gateway.http.ingress"):
        await response(SCOPE, client.receive, client.send)  # type: ignore[arg-type]
    assert client.bodies() == [(b"part", True), (b"", False)]
    assert "failed midway" in caplog.text


async def test_a_send_that_fails_runs_the_bodys_cleanup_and_is_raised() -> None:
    cleaned = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            cleaned.set()

    async def broken_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset")

    response = to_starlette(Response(200, body(), [], "text/plain"), Departures())
    with pytest.raises(OSError):
        await response(SCOPE, Client().receive, broken_send)  # type: ignore[arg-type]
    assert cleaned.is_set()


async def test_a_shutdown_cancelling_the_relay_is_not_taken_for_the_client() -> None:
    client = Client()

    async def endless() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.Event().wait()
        yield b"never"

    response = to_starlette(Response(200, endless(), [], "text/plain"), Departures())
    relay = asyncio.ensure_future(response(SCOPE, client.receive, client.send))  # type: ignore[arg-type]
    await client.reading.wait()
    relay.cancel()
    with pytest.raises(asyncio.CancelledError):
        await relay
