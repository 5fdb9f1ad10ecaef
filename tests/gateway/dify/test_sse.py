"""The SSE decoder, from an edge-case table (as httpx-sse's tests/test_decoders.py does)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.dify.sse import (
    ServerSentEvent,
    SSEDecoder,
    SSELineDecoder,
    SSELineTooLong,
    SSEStreamDecoder,
    aiter_sse,
)

E = ServerSentEvent


def decode_all(chunks: list[bytes | str]) -> tuple[list[ServerSentEvent], bool]:
    decoder = SSEStreamDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events, decoder.close()


def every_split(data: bytes) -> list[list[bytes | str]]:
    """The stream in one chunk, byte by byte, and cut at every position."""
    cuts: list[list[bytes | str]] = [[data], [data[i : i + 1] for i in range(len(data))]]
    cuts += [[data[:i], data[i:]] for i in range(1, len(data))]
    return cuts


TABLE: list[tuple[str, bytes, list[ServerSentEvent]]] = [
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
    ("retry not digits", b"retry: 10a\ndata: a\n\nretry: +5\ndata: b\n\n", [E(data="a"), E(data="b")]),
    ("retry non-ascii digits", "retry: ١٢\ndata: a\n\n".encode(), [E(data="a")]),
    ("id/retry alone dispatch nothing", b"id: 7\nretry: 5\n\n", []),
    ("unknown field", b"something: else\n\n", []),
    ("leading BOM dropped", b"\xef\xbb\xbfdata: a\n\n", [E(data="a")]),
    ("event reset between blocks", b"event: x\ndata: 1\n\ndata: 2\n\n", [E("x", "1"), E(data="2")]),
    (
        "dify message",
        b'data: {"event": "message", "answer": "Hi"}\n\n',
        [E(data='{"event": "message", "answer": "Hi"}')],
    ),
]


@pytest.mark.parametrize(("stream", "expected"), [(s, e) for _, s, e in TABLE], ids=[n for n, _, _ in TABLE])
def test_table_under_every_chunking(stream: bytes, expected: list[ServerSentEvent]) -> None:
    for chunks in every_split(stream):
        events, discarded = decode_all(chunks)
        assert events == expected, chunks
        assert discarded is False


def test_str_chunks_are_accepted() -> None:
    assert decode_all(["data: a\r", "\ndata: b\n", "\n"]) == ([E(data="a\nb")], False)


@pytest.mark.parametrize(
    ("stream", "discarded"),
    [
        (b"data: unterminated", True),  # no line ending at all
        (b"data: a\n", True),  # line ended, blank line missing
        (b"data: a\n\ndata: b\n", True),
        (b"event: ping\n", True),
        (b": comment", False),
        (b"id: 3\n", False),
    ],
)
def test_stream_ending_without_blank_line_discards_the_block(stream: bytes, discarded: bool) -> None:
    for chunks in every_split(stream):
        events, was_discarded = decode_all(chunks)
        assert was_discarded is discarded
        assert events == ([E(data="a")] if stream.startswith(b"data: a\n\n") else [])


def test_lone_cr_line_is_emitted_immediately() -> None:
    lines = SSELineDecoder()
    assert lines.decode(b"data: a\r") == ["data: a"]  # no waiting for a possible "\n"
    assert lines.decode(b"\n") == []  # the LF completes the same CRLF
    assert lines.decode(b"\r") == [""]
    assert lines.decode(b"\r\n") == [""]
    assert lines.flush() == []


def test_line_decoder_flush_returns_partial_line_and_utf8_tail() -> None:
    lines = SSELineDecoder()
    assert lines.decode("data: é".encode()[:-1]) == []  # half of "é" is held back
    assert lines.flush() == ["data: \ufffd"]  # an incomplete character at EOF becomes U+FFFD
    assert lines.flush() == []


def test_empty_chunks_change_nothing() -> None:
    lines = SSELineDecoder()
    assert lines.decode(b"") == []
    assert lines.decode(b"a\r") == ["a"]
    assert lines.decode(b"") == []
    assert lines.decode("\n") == []  # the skipped LF survives an empty chunk in between


def test_bom_only_stripped_at_start() -> None:
    assert decode_all([b"data: a\n\n", "\ufeffdata: b\n\n"]) == ([E(data="a")], False)


def test_line_length_cap() -> None:
    lines = SSELineDecoder(max_line_length=8)
    assert lines.decode(b"data: 12\n") == ["data: 12"]
    lines.decode(b"data")
    with pytest.raises(SSELineTooLong):
        lines.decode(b": 12345")
    with pytest.raises(SSELineTooLong):
        SSEStreamDecoder(max_line_length=4).feed(b"data: toolong")


def test_decoder_last_event_id_and_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.decode("id: 9") is None
    assert decoder.last_event_id == "9"
    assert decoder.pending is False
    decoder.decode("data: x")
    assert decoder.pending is True
    assert decoder.decode("") == E(data="x", id="9")
    assert decoder.pending is False


@pytest.mark.anyio
async def test_aiter_sse() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: a\r\n"
        yield b"\r\nevent: ping\r\n\r\ndata: cut"

    assert [event async for event in aiter_sse(chunks())] == [E(data="a"), E("ping")]
