"""What an open answer keeps while it waits for Dify: its decoder state and its body, nothing else.

Through `ConnectionSlots` (the production transport), events are read from the body directly
(`ResponseBody`, `EventReader`): no stack of async generators stays suspended per stream, and the
httpx request, response and headers are let go once the stream is open. A compressed body still
goes through httpx's decoding; aiohttp's errors arrive mapped as httpx-aiohttp maps them.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import sys
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest

from gateway.clock import SystemClock
from gateway.dify import DifyClient, RetryPolicy, make_http_client
from gateway.dify.errors import AnswerCutOff
from gateway.dify.models import AskRequest
from gateway.dify.pool import ConnectionSlots, body_of
from gateway.exceptions import UpstreamTimeout
from tests.gateway.dify.conftest import app, end, msg, sse_bytes
from tests.gateway.dify.test_client import ASK

pytestmark = pytest.mark.anyio

EVENT_STREAM = {"content-type": "text/event-stream"}


class HeldBody(httpx.AsyncByteStream):
    """A body (no generator of its own) that sends `first`, then `rest` once `release` is set."""

    def __init__(self, first: bytes, rest: bytes, release: anyio.Event) -> None:
        self._parts = [first, rest]
        self._release = release

    def __aiter__(self) -> HeldBody:
        return self

    async def __anext__(self) -> bytes:
        if not self._parts:
            raise StopAsyncIteration
        if len(self._parts) == 1:
            await self._release.wait()
        return self._parts.pop(0)

    async def aclose(self) -> None:
        self._parts.clear()


def held_answer(release: anyio.Event) -> Callable[[httpx.Request], httpx.Response]:
    """A handler answering "Hi" at once and ending the answer once `release` is set."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers=EVENT_STREAM, stream=HeldBody(sse_bytes(msg("Hi")), sse_bytes(end()), release)
        )

    return handler


def slots_client(handler: Callable[[httpx.Request], httpx.Response], limit: int = 4) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=ConnectionSlots(httpx.MockTransport(handler), limit))


@contextmanager
def async_generators() -> Iterator[list[AsyncGenerator[Any, Any]]]:
    """Every async generator first iterated inside the block (the loop's own hook still runs)."""
    seen: list[AsyncGenerator[Any, Any]] = []
    hooks = sys.get_asyncgen_hooks()

    def firstiter(gen: AsyncGenerator[Any, Any]) -> None:
        seen.append(gen)
        if hooks.firstiter is not None:
            hooks.firstiter(gen)

    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=hooks.finalizer)
    try:
        yield seen
    finally:
        sys.set_asyncgen_hooks(*hooks)


async def test_a_waiting_stream_keeps_no_async_generator_suspended() -> None:
    release = anyio.Event()

    handler = held_answer(release)

    async with slots_client(handler) as http:
        client = DifyClient(http, clock=SystemClock())
        with async_generators() as seen:
            async with client.stream(app(), ASK) as stream:
                deltas = stream.deltas()
                assert (await anext(deltas)).text == "Hi"
                waiting = asyncio.ensure_future(anext(deltas, None))
                await asyncio.sleep(0)  # the read now waits on the body
                suspended = [str(gen) for gen in seen if getattr(gen, "ag_frame", None) is not None]
                release.set()
                assert await waiting is None
            assert stream.answer.text == "Hi" and stream.answer.complete
    assert suspended == []


async def test_an_open_stream_lets_go_of_the_http_request_and_response() -> None:
    release = anyio.Event()
    made: list[weakref.ref[Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        response = held_answer(release)(request)
        made.extend([weakref.ref(request), weakref.ref(response), weakref.ref(response.headers)])
        return response

    async with slots_client(handler) as http:
        client = DifyClient(http, clock=SystemClock())
        async with client.stream(app(), ASK) as stream:
            deltas = stream.deltas()
            assert (await anext(deltas)).text == "Hi"
            gc.collect()
            alive = [type(ref()).__name__ for ref in made if ref() is not None]
            release.set()
            assert [delta.text async for delta in deltas] == []
        assert stream.answer.complete
    assert alive == []


class Inputs(dict[str, Any]):
    """A dict that can be watched with a weak reference."""


async def test_an_open_stream_lets_go_of_what_was_asked() -> None:
    """The request (a long prompt, its inputs) is needed to open the stream, not to read it."""
    release = anyio.Event()

    handler = held_answer(release)

    inputs = Inputs(topic="x" * 10_000)
    watched = weakref.ref(inputs)
    async with slots_client(handler) as http:
        stream = DifyClient(http, clock=SystemClock()).stream(app(), AskRequest(user="u", query="q", inputs=inputs))
        del inputs
        async with stream:
            gc.collect()
            alive = watched() is not None
            release.set()
            await stream.collect()
        with pytest.raises(RuntimeError, match="opened once"):
            await stream.__aenter__()
    assert not alive


async def test_a_compressed_event_stream_is_decoded_by_httpx() -> None:
    body = gzip.compress(sse_bytes(msg("Hello "), msg("there"), end()))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={**EVENT_STREAM, "content-encoding": "gzip"}, content=body)

    async with slots_client(handler) as http:
        answer = await DifyClient(http, clock=SystemClock()).ask(app(), ASK)
    assert answer.text == "Hello there" and answer.complete


async def test_closing_an_unread_stream_gives_its_connection_slot_back() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stop"):  # the stream ends unfinished: the client stops the task
            return httpx.Response(200, json={"result": "success"})
        return httpx.Response(200, headers=EVENT_STREAM, stream=HeldBody(sse_bytes(msg("Hi")), b"", anyio.Event()))

    async with slots_client(handler, limit=1) as http:
        client = DifyClient(http, clock=SystemClock(), timeout=httpx.Timeout(5.0, pool=0.5))
        for _ in range(3):  # one slot: each stream must give it back, though its body never ended
            async with client.stream(app(), ASK) as stream:
                assert (await anext(stream.deltas())).text == "Hi"


async def test_a_body_read_by_httpx_is_not_handed_out_again() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=EVENT_STREAM, stream=HeldBody(sse_bytes(msg("Hi")), b"", done))

    done = anyio.Event()
    done.set()
    async with slots_client(handler) as http:
        async with http.stream("GET", "https://dify.test/") as response:
            assert body_of(response) is not None
            await response.aread()
            assert body_of(response) is None
        async with http.stream("GET", "https://dify.test/") as response:
            chunks = [chunk async for chunk in response.aiter_bytes()]  # httpx reads it as ever
        assert b"".join(chunks) == sse_bytes(msg("Hi"))


# --- through aiohttp, against a real socket -----------------------------------------------------


async def serve_once(reply: Callable[[asyncio.StreamWriter], Any]) -> tuple[asyncio.Server, int]:
    """A one-shot HTTP server on a free port: reads the request head, then runs `reply`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = next(line.split(":")[1] for line in head.split("\r\n") if line.startswith("content-length:"))
        await reader.readexactly(int(length))
        try:
            await reply(writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def aiohttp_stream(reply: Callable[[asyncio.StreamWriter], Any], **client_args: Any) -> Any:
    """The deltas of one answer from `reply` through the aiohttp transport (the stop call finds no server)."""
    server, port = await serve_once(reply)
    http = make_http_client(use_aiohttp=True, max_connections=4)
    try:
        client = DifyClient(http, clock=SystemClock(), retry=RetryPolicy(max_attempts=1), **client_args)
        dify = app(base_url=f"http://127.0.0.1:{port}/v1")
        async with client.stream(dify, ASK) as stream:
            return [delta.text async for delta in stream.deltas()]
    finally:
        await http.aclose()
        server.close()


async def test_aiohttp_a_connection_cut_mid_answer_is_cut_off() -> None:
    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(sse_bytes(msg("Hi"))))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()  # mid-body: the chunked encoding never ends

    with pytest.raises(AnswerCutOff, match="connection broke") as caught:
        await aiohttp_stream(reply)
    assert caught.value.partial is not None and caught.value.partial.text == "Hi"


async def test_aiohttp_silence_mid_answer_is_an_upstream_timeout() -> None:
    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + chunk(sse_bytes(msg("Hi"))))
        await writer.drain()
        await finished.wait()  # silent until the test is over

    finished = asyncio.Event()
    try:
        with pytest.raises(UpstreamTimeout, match="sent no answer"):
            await aiohttp_stream(reply, idle_timeout=0.2, stop_timeout=0.2)
    finally:
        finished.set()


async def test_aiohttp_an_answer_reads_to_its_end() -> None:
    events = sse_bytes(msg("one "), msg("two"), end())

    async def reply(writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD + b"".join(chunk(events[i : i + 5]) for i in range(0, len(events), 5)) + b"0\r\n\r\n")
        await writer.drain()

    assert await aiohttp_stream(reply) == ["one ", "two"]
