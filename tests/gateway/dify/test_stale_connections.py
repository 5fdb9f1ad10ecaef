"""Kept-alive connections that Dify (or a proxy before it) closed while they sat idle in our pool.

The server below answers the first request on a connection and keeps it open; when the next
request arrives on it, it closes the connection without a byte of answer: what a server does
whose idle timer fired as the request was on its way (uvicorn and Node close idle connections
after 5 s, gunicorn after 2 s). Such a request never reached the app, so it is sent once more on
a fresh connection; a request that got any answer byte is never sent twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from gateway.clock import FakeClock
from gateway.dify import AskRequest, DifyClient, RetryPolicy, make_http_client
from gateway.exceptions import UpstreamError
from tests.gateway.dify.conftest import app, end, msg, sse_bytes

pytestmark = pytest.mark.anyio
ASK = AskRequest(user="slack:T1:U1", query="Hello")


@dataclass
class IdleClosingServer:
    """HTTP/1.1 on loopback. `reused`: what to do with a request on a kept-alive connection:
    "close" (no byte back), "partial" (half a status line, then close) or "answer".
    `close_all`: close every connection at its first request as well."""

    reused: str = "close"
    close_all: bool = False
    port: int = 0
    connections: int = 0
    requests: list[tuple[str, bytes]] = field(default_factory=list)  # (request line, body)
    dropped: list[int] = field(default_factory=list)  # indexes of the requests closed without an answer

    def reply(self, target: str) -> bytes:
        if target.endswith("/chat-messages"):
            body = sse_bytes(msg("hi"), end())
            kind = b"text/event-stream"
        else:
            body, kind = json.dumps({"result": "success", "id": "file-1"}).encode(), b"application/json"
        return b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (kind, len(body), body)

    async def serve(self, stream: anyio.abc.ByteStream) -> None:
        self.connections += 1
        buffered = BufferedByteReceiveStream(stream)
        served = 0
        async with stream:
            while True:
                try:
                    head = await buffered.receive_until(b"\r\n\r\n", 65536)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await buffered.receive_exactly(length) if length else b""
                self.requests.append((lines[0], body))
                if (served and self.reused == "close") or self.close_all:
                    self.dropped.append(len(self.requests) - 1)
                    return
                if served and self.reused == "partial":
                    await stream.send(b"HTTP/1.1 20")
                    return
                served += 1
                await stream.send(self.reply(lines[0].split(" ")[1]))


@asynccontextmanager
async def idle_closing_server(reused: str = "close") -> AsyncIterator[IdleClosingServer]:
    server = IdleClosingServer(reused)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, server.serve)
        yield server
        tasks.cancel_scope.cancel()


@asynccontextmanager
async def dify_client(use_aiohttp: bool, **kw: float) -> AsyncIterator[DifyClient]:
    http = make_http_client(use_aiohttp=use_aiohttp, max_connections=4, **kw)
    try:  # one attempt: the client's own retries (with backoff) must not be what saves the request
        yield DifyClient(http, clock=FakeClock(), retry=RetryPolicy(max_attempts=1))
    finally:
        await http.aclose()


@pytest.mark.parametrize("use_aiohttp", [True, False], ids=["aiohttp", "httpx"])
async def test_a_request_on_a_connection_the_server_closed_goes_again_on_a_fresh_one(use_aiohttp: bool) -> None:
    async with idle_closing_server() as server, dify_client(use_aiohttp) as client:
        target = app(base_url=f"http://127.0.0.1:{server.port}/v1")
        assert (await client.ask(target, ASK)).text == "hi"  # opens a connection and keeps it
        assert (await client.ask(target, ASK)).text == "hi"  # the kept-alive connection was closed under it
        await client.ask(target, ASK)  # the retry's connection was not kept: this one opens another
        await client.stop(target, "task-1", "slack:T1:U1")  # stops are never retried by the client
        await client.ask(target, ASK)
        file = await client.upload(target, user="u", name="a.txt", content=b"x" * 1000, mime_type="text/plain")
        assert file["id"] == "file-1"
    for dropped in server.dropped:  # each went again at once, with the same body, and was answered
        assert server.requests[dropped] == server.requests[dropped + 1] and dropped + 1 not in server.dropped
    assert len(server.requests) == 6 + len(server.dropped)
    kinds = {server.requests[i][0].split(" ")[1] for i in server.dropped}
    every_kind = {"/v1/chat-messages", "/v1/chat-messages/task-1/stop", "/v1/files/upload"}
    # aiohttp keeps each answered connection, so all three kinds of POST met a closed one
    assert kinds == every_kind if use_aiohttp else kinds and kinds <= every_kind
    assert b"x" * 1000 in server.requests[-1][1]


async def test_a_request_that_got_part_of_an_answer_is_not_sent_again() -> None:
    async with idle_closing_server("partial") as server, dify_client(True) as client:
        target = app(base_url=f"http://127.0.0.1:{server.port}/v1")
        await client.ask(target, ASK)
        with pytest.raises(UpstreamError, match="could not reach"):
            await client.ask(target, ASK)
    assert len(server.requests) == 2  # Dify may have seen the second one: it is not repeated


async def test_a_fresh_connection_that_fails_too_is_not_tried_a_third_time() -> None:
    async with idle_closing_server() as server, dify_client(True) as client:
        target = app(base_url=f"http://127.0.0.1:{server.port}/v1")
        await client.ask(target, ASK)
        server.close_all = True  # the new connection dies the same way
        with pytest.raises(UpstreamError, match="could not reach"):
            await client.ask(target, ASK)
    assert len(server.requests) == 3  # the first answer, then the failing request twice: no more


async def test_idle_connections_are_not_kept_past_the_keepalive_expiry() -> None:
    async with idle_closing_server("answer") as server, dify_client(True, keepalive_expiry=0.01) as client:
        target = app(base_url=f"http://127.0.0.1:{server.port}/v1")
        await client.ask(target, ASK)
        await anyio.sleep(0.2)  # well past the 10 ms expiry: the next request opens a new connection
        await client.ask(target, ASK)
    assert server.connections == 2
