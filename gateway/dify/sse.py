"""Server-Sent Events from a streamed `httpx.Response`: httpx-sse's decoder behind a line-length cap.

httpx-sse's decoders (`SSELineDecoder`, `SSEDecoder`, what its `EventSource.aiter_sse()` runs)
do the WHATWG work: they split lines only on `\\r\\n`, `\\r` and `\\n` (never U+2028), join
multi-line `data`, strip one space after the colon, ignore comments, unknown fields and an `id`
with NUL, keep the last `id`, and `aiter_sse` discards an unterminated last block. A block that
has an `event:` but no `data:` is dispatched, which is what we want: Dify's keep-alive is
`event: ping` plus a blank line.

`EventReader` runs those decoders itself, in one object per stream, rather than through
`EventSource`: that is a stack of five async generators (the response's bytes, its text, the
lines, the events), each of which keeps a frame and its last chunk, text or line list alive
while the stream waits for Dify. With thousands of answers open at once this was a good part of
the memory of each (docs/performance.md, streammem). The reader holds only the decoders' state
between chunks and reads the body with one call per chunk (`gateway.dify.pool.body_of`).

What httpx-sse leaves to us is memory safety: it buffers a line until its line ending arrives,
so an upstream that never sends one would grow that buffer without end. The reader therefore
raises `SSELineTooLong` as soon as a line grows past `max_line_length` characters. On the way
it decodes UTF-8 whatever the content-type's charset says and drops one leading BOM (both
WHATWG rules).

Where httpx-sse differs from the letter of WHATWG (none of it happens with Dify, which sends
neither `id` nor `retry`): a block holding only `id:`/`retry:` fields is dispatched (with empty
data), `retry` is read with `int()` (so `+5` counts), and a line ended by a lone `\\r` at the very
end of a chunk waits for the next chunk (which may start with its `\\n`).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator

import httpx

# The decoders EventSource.aiter_sse() runs; httpx-sse is pinned (<0.5) for this import.
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from httpx_sse._models import ServerSentEvent

from gateway.dify.pool import ResponseBody, body_of

__all__ = ["EventReader", "SSELineTooLong", "ServerSentEvent", "aiter_sse"]

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


class SSELineTooLong(ValueError):
    """A line grew past `max_line_length` characters without a line ending."""


class EventReader:
    """The events of one streamed `text/event-stream` response: `await anext(reader)` (or
    `async for`), then `aclose()`, which closes the response.

    Raises (while iterating) `SSELineTooLong` for a line longer than `max_line_length`
    characters, and what reading the body raises (`httpx.TransportError`...).

    Between reads it keeps the decoders' state and the events of the last chunk not yet taken,
    nothing else: the response (its request and headers) is let go as soon as the body can be
    read without it. Only the tail after the last line ending is counted against the cap from
    chunk to chunk, so the check costs two `rfind`s per chunk; a chunk that could hide a long
    line in its middle is split to look.
    """

    __slots__ = ("_body", "_chunks", "_decoder", "_events", "_lines", "_max", "_response", "_started", "_tail", "_utf8")

    def __init__(self, response: httpx.Response, max_line_length: int) -> None:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        body = body_of(response) if encoding in ("", "identity") else None
        self._body: ResponseBody | None = body
        # Without a body of our own (another transport, or a compressed one): httpx decodes it.
        self._response: httpx.Response | None = None if body is not None else response
        self._chunks: AsyncIterator[bytes] | None = None
        if body is not None:
            response.is_stream_consumed = True  # read here, not through httpx
        self._max = max_line_length
        self._utf8: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lines = SSELineDecoder()
        self._decoder = SSEDecoder()
        self._events: list[ServerSentEvent] = []
        self._tail = 0  # characters since the last line ending
        self._started = False  # the first text (and its BOM) went by

    def __aiter__(self) -> EventReader:
        return self

    async def __anext__(self) -> ServerSentEvent:
        events = self._events
        while not events:
            utf8 = self._utf8
            if utf8 is None:  # the body ended
                raise StopAsyncIteration
            chunk = await self._read()
            if chunk:
                self._decode(utf8.decode(chunk))
            else:  # the end: what the UTF-8 decoder held, then the line decoder's last line
                self._utf8 = None
                self._decode(utf8.decode(b"", final=True))
                for line in self._lines.flush():
                    self._dispatch(line)
        return events.pop(0)

    def take(self) -> ServerSentEvent | None:
        """The next event if it is decoded already (it arrived with an earlier chunk), else None:
        no read, no wait. `anext` would return the same event."""
        return self._events.pop(0) if self._events else None

    @property
    def buffered(self) -> bool:
        """Whether an event is decoded and waiting, so that the next one needs no read."""
        return bool(self._events)

    async def aclose(self) -> None:
        """Close the response (its connection goes back to the pool or is closed)."""
        self._events.clear()
        if self._body is not None:
            await self._body.aclose()
        elif self._response is not None:
            await self._response.aclose()

    async def _read(self) -> bytes:
        if self._body is not None:
            return await self._body.read()
        if self._chunks is None:
            assert self._response is not None
            self._chunks = self._response.aiter_bytes()
        async for chunk in self._chunks:
            if chunk:
                return chunk
        return b""

    def _decode(self, text: str) -> None:
        if not text:
            return
        if not self._started:
            self._started = True
            text = text.removeprefix(_BOM)
        self._tail = self._check(text)
        if text:
            for line in self._lines.decode(text):
                self._dispatch(line)

    def _dispatch(self, line: str) -> None:
        sse = self._decoder.decode(line.rstrip("\n"))
        if sse is not None:
            self._events.append(sse)

    def _check(self, text: str) -> int:
        """The new tail length after `text`; raises when any line in it ends up too long."""
        tail = self._tail
        end = max(text.rfind("\n"), text.rfind("\r"))
        if tail + len(text) > self._max:
            lines = _LINE_END.split(text)
            if tail + len(lines[0]) > self._max or any(len(line) > self._max for line in lines[1:]):
                raise SSELineTooLong(f"an event-stream line exceeded {self._max} characters")
        return tail + len(text) if end < 0 else len(text) - end - 1


def aiter_sse(response: httpx.Response, *, max_line_length: int) -> EventReader:
    """The events of a streamed `text/event-stream` response (an `EventReader`).

    Raises `SSELineTooLong` (while iterating) for a line longer than `max_line_length`
    characters, and what reading the response raises (`httpx.TransportError`...). Close it
    (`aclose()`) when done with it, early or not: that closes the response.
    """
    return EventReader(response, max_line_length)
