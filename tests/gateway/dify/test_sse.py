"""SSE decoding (httpx-sse behind our line cap), from an edge-case table under every chunking."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import httpx
import pytest

from gateway.dify.sse import SSELineTooLong, aiter_sse

pytestmark = pytest.mark.anyio

Event = tuple[str, str, str, int | None]  # event, data, id, retry
CAP = 1 << 20


def E(event: str = "message", data: str = "", id: str = "", retry: int | None = None) -> Event:
    return (event, data, id, retry)


def stream_of(chunks: Iterable[bytes], content_type: str = "text/event-stream") -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return httpx.Response(200, headers={"content-type": content_type}, content=body())


async def decode(chunks: Iterable[bytes], *, cap: int = CAP, content_type: str = "text/event-stream") -> list[Event]:
    events = aiter_sse(stream_of(chunks, content_type), max_line_length=cap)
    return [(sse.event, sse.data, sse.id, sse.retry) async for sse in events]


def every_split(data: bytes) -> list[list[bytes]]:
    """The stream in one chunk, byte by byte, and cut at every position."""
    cuts = [[data], [data[i : i + 1] for i in range(len(data))]]
    cuts += [[data[:i], data[i:]] for i in range(1, len(data))]
    return cuts


TABLE: list[tuple[str, bytes, list[Event]]] = [
    ("empty input", b"", []),
    ("only blank lines", b"\n\n\r\n\r", []),
    ("one event", b"data: hello\n\n", [E(data="hello")]),
    ("CRLF", b"data: a\r\n\r\ndata: b\r\n\r\n", [E(data="a"), E(data="b")]),
    ("lone CR", b"data: a\r\rdata: b\r\r", [E(data="a"), E(data="b")]),
    ("mixed endings", b"data: a\r\ndata: b\rdata: c\n\n", [E(data="a\nb\nc")]),
    ("multi-line data", b"data: YH00\ndata: +2\ndata: 10\n\n", [E(data="YH00\n+2\n10")]),
    ("U+2028 does not split", "data: a\u2028b\u0085c\x0cd\n\n".encode(), [E(data="a\u2028b\u0085c\x0cd")]),
    ("multi-byte UTF-8", "data: héllo 🌍\n\n".encode(), [E(data="héllo 🌍")]),
    ("comment ignored", b": keep-alive\ndata: x\n\n", [E(data="x")]),
    ("comment-only block", b": just a comment\n\n", []),
    ("event name", b"event: logline\ndata: up\n\n", [E(event="logline", data="up")]),
    ("ping without data", b"event: ping\n\n", [E(event="ping", data="")]),
    ("ping between events", b"data: 1\n\nevent: ping\n\ndata: 2\n\n", [E(data="1"), E("ping"), E(data="2")]),
    ("no space after colon", b"data:test\n\n", [E(data="test")]),
    ("only one space stripped", b"data:  two\n\n", [E(data=" two")]),
    ("field without colon", b"data\n\n", [E(data="")]),
    ("two empty data lines", b"data\ndata\n\n", [E(data="\n")]),
    ("empty data value", b"data:\n\n", [E(data="")]),
    ("value with colons", b'data: {"a": "b:c"}\n\n', [E(data='{"a": "b:c"}')]),
    ("id persists", b"id: 1\ndata: a\n\ndata: b\n\n", [E(data="a", id="1"), E(data="b", id="1")]),
    ("id reset by bare id", b"id: 1\ndata: a\n\nid\ndata: b\n\n", [E(data="a", id="1"), E(data="b")]),
    ("id with NUL ignored", b"data: a\nid: 12\x003\n\n", [E(data="a")]),
    ("retry", b"retry: 1000\ndata: a\n\n", [E(data="a", retry=1000)]),
    # httpx-sse reads retry with int() (WHATWG: ASCII digits only); Dify sends no retry field.
    ("retry not a number", b"retry: 10a\ndata: a\n\nretry: +5\ndata: b\n\n", [E(data="a"), E(data="b", retry=5)]),
    # httpx-sse dispatches an id/retry-only block (WHATWG does not); Dify sends neither field.
    ("id/retry alone", b"id: 7\nretry: 5\n\n", [E(id="7", retry=5)]),
    ("unknown field", b"something: else\n\n", []),
    ("leading BOM dropped", b"\xef\xbb\xbfdata: a\n\n", [E(data="a")]),
    ("event reset between blocks", b"event: x\ndata: 1\n\ndata: 2\n\n", [E("x", "1"), E(data="2")]),
    ("unterminated block discarded", b"data: a\n\ndata: b\n", [E(data="a")]),
    ("unterminated line discarded", b"data: a\n\ndata: cut", [E(data="a")]),
    ("broken UTF-8 becomes U+FFFD", b"data: \xc3(\n\n", [E(data="\ufffd(")]),
    (
        "dify message",
        b'data: {"event": "message", "answer": "Hi"}\n\n',
        [E(data='{"event": "message", "answer": "Hi"}')],
    ),
]


@pytest.mark.parametrize(("stream", "expected"), [(s, e) for _, s, e in TABLE], ids=[n for n, _, _ in TABLE])
async def test_table_under_every_chunking(stream: bytes, expected: list[Event]) -> None:
    for chunks in every_split(stream):
        assert await decode(chunks) == expected, chunks


async def test_empty_chunks_change_nothing() -> None:
    assert await decode([b"", b"data: a\r", b"", b"\n", b"", b"\n"]) == [E(data="a")]


async def test_bom_only_stripped_at_start() -> None:
    assert await decode([b"data: a\n\n", "\ufeffdata: b\n\n".encode()]) == [E(data="a")]


async def test_text_is_utf8_whatever_the_charset_says() -> None:
    chunks = ["data: héllo\n\n".encode()]
    assert await decode(chunks, content_type="text/event-stream; charset=latin-1") == [E(data="héllo")]


# -- the line cap ------------------------------------------------------------------------------------


async def test_lines_up_to_the_cap_pass() -> None:
    assert await decode([b"data: 12\n", b"\n"], cap=8) == [E(data="12")]
    assert await decode([b"data: 12\r", b"\n\r\n"], cap=8) == [E(data="12")]  # a CRLF split in two
    assert await decode([b"data: \xc3\xa9\xc3\xa9\n\n"], cap=8) == [E(data="éé")]  # characters, not bytes


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: 123\n\n"],  # one chunk
        [b"data", b": 12", b"3\n\n"],  # the line grows over several chunks
        [b"data: 1\ndata: 123\ndata: 1\n\n"],  # hidden in the middle of a chunk
        [b"data: 1\n\ndata", b": 123"],  # the tail after the last line ending grows
        [b"data: 123"],  # the line never ends
    ],
)
async def test_a_line_over_the_cap_raises(chunks: list[bytes]) -> None:
    with pytest.raises(SSELineTooLong, match="exceeded 8 characters"):
        await decode(chunks, cap=8)


async def test_a_line_that_never_ends_is_cut_off_early() -> None:
    """A hostile upstream streaming one endless line costs at most the cap plus a chunk."""
    read = 0

    def endless() -> Iterable[bytes]:
        nonlocal read
        yield b"data: ok\n\n"
        while True:
            read += 1
            yield b"x" * 1000

    events = aiter_sse(stream_of(endless()), max_line_length=10_000)
    assert (await anext(events)).data == "ok"
    with pytest.raises(SSELineTooLong):
        await anext(events)
    assert read == 11


async def test_closing_early_closes_the_response() -> None:
    response = stream_of([b"data: 1\n\n", b"data: 2\n\n"])
    events = aiter_sse(response, max_line_length=CAP)
    assert (await anext(events)).data == "1"
    await events.aclose()
    await response.aclose()
    assert response.is_closed


async def test_take_hands_out_what_one_read_decoded_and_nothing_more() -> None:
    reader = aiter_sse(stream_of([b"data: 1\n\ndata: 2\n\ndata: 3", b"\n\n"]), max_line_length=CAP)
    assert reader.take() is None and not reader.buffered  # nothing read yet
    first = await anext(reader)
    assert first.data == "1" and reader.buffered
    taken = reader.take()
    assert taken is not None and taken.data == "2"
    assert reader.take() is None and not reader.buffered  # "3" is not complete in that read
    assert (await anext(reader)).data == "3"
    await reader.aclose()
