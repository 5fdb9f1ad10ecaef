"""Server-Sent Events from a streamed `httpx.Response`: httpx-sse's decoder behind a line-length cap.

httpx-sse (`EventSource(response).aiter_sse()`) does the WHATWG work on any httpx response, the
httpx-aiohttp transport's included: it splits lines only on `\\r\\n`, `\\r` and `\\n` (never
U+2028), joins multi-line `data`, strips one space after the colon, ignores comments, unknown
fields and an `id` with NUL, keeps the last `id`, and discards an unterminated last block. It
also dispatches a block that has an `event:` but no `data:`, which is what we want: Dify's
keep-alive is `event: ping` plus a blank line.

What httpx-sse leaves to us is memory safety: it buffers a line until its line ending arrives,
so an upstream that never sends one would grow that buffer without end. `aiter_sse` therefore
hands httpx-sse text that has passed `CappedText`, which raises `SSELineTooLong` as soon as a
line grows past `max_line_length` characters. On the way it decodes UTF-8 whatever the
content-type's charset says and drops one leading BOM (both WHATWG rules).

Where httpx-sse differs from the letter of WHATWG (none of it happens with Dify, which sends
neither `id` nor `retry`): a block holding only `id:`/`retry:` fields is dispatched (with empty
data), `retry` is read with `int()` (so `+5` counts), and a line ended by a lone `\\r` at the very
end of a chunk waits for the next chunk (which may start with its `\\n`).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import httpx
from httpx_sse import EventSource, ServerSentEvent

__all__ = ["CappedText", "SSELineTooLong", "ServerSentEvent", "aiter_sse"]

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


class SSELineTooLong(ValueError):
    """A line grew past `max_line_length` characters without a line ending."""


class CappedText:
    """The slice of an `httpx.Response` that httpx-sse reads (`headers`, `aiter_text()`), with
    the text decoded as UTF-8 and every line checked against `max_line_length` characters.

    Only the tail after the last line ending is counted from chunk to chunk, so the check costs
    two `rfind`s per chunk; a chunk that could hide a long line in its middle is split to look.
    """

    def __init__(self, response: httpx.Response, max_line_length: int) -> None:
        self.headers = response.headers
        self._response = response
        self._max = max_line_length

    async def aiter_text(self) -> AsyncIterator[str]:
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        tail = 0  # characters since the last line ending
        first = True
        async for chunk in self._response.aiter_bytes():
            text = utf8.decode(chunk)
            if first and text:
                first = False
                text = text.removeprefix(_BOM)
            tail = self._check(text, tail)
            if text:
                yield text
        text = utf8.decode(b"", final=True)
        self._check(text, tail)
        if text:
            yield text

    def _check(self, text: str, tail: int) -> int:
        """The new tail length after `text`; raises when any line in it ends up too long."""
        end = max(text.rfind("\n"), text.rfind("\r"))
        if tail + len(text) > self._max:
            lines = _LINE_END.split(text)
            if tail + len(lines[0]) > self._max or any(len(line) > self._max for line in lines[1:]):
                raise SSELineTooLong(f"an event-stream line exceeded {self._max} characters")
        return tail + len(text) if end < 0 else len(text) - end - 1


def aiter_sse(response: httpx.Response, *, max_line_length: int) -> AsyncGenerator[ServerSentEvent, None]:
    """The events of a streamed `text/event-stream` response, decoded by httpx-sse.

    Raises `SSELineTooLong` (while iterating) for a line longer than `max_line_length`
    characters, and what reading the response raises (`httpx.TransportError`...). Close the
    generator (`aclose()`) when done with it early.
    """
    # CappedText offers exactly what EventSource reads from a response (headers, aiter_text).
    return EventSource(cast(httpx.Response, CappedText(response, max_line_length))).aiter_sse()
