"""An incremental Server-Sent Events decoder (pure: no I/O).

Modelled on httpx-sse `_decoders.py` and the WHATWG "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

* `SSELineDecoder` turns byte (or str) chunks into lines. It splits **only** on `\\r\\n`, `\\r`
  and `\\n` (never `str.splitlines()`, which also splits on U+2028 and friends), keeps a `\\r`
  that ends a chunk until it knows whether a `\\n` follows, decodes UTF-8 incrementally so a
  character split across chunks survives, and drops one leading BOM.
* `SSEDecoder` turns lines into `ServerSentEvent`s: `event`, multi-line `data` joined with `\\n`,
  `id` (ignored when it contains NUL), `retry` (ASCII digits only), `:` comments ignored, a
  field without a colon has an empty value, one leading space of a value is stripped.
* `SSEStreamDecoder` chains both: `feed(chunk) -> list[ServerSentEvent]`, then `close()`.

One documented deviation from WHATWG: a block with an `event:` field but **no** `data:` is
dispatched with `data == ""` (WHATWG drops it). Dify's keep-alive is exactly such a block
(`event: ping` + blank line, every 10 s), and callers want to see it to keep their own
clients alive. Blocks with only `id`/`retry`/comments are still not dispatched.

At the end of the stream an unterminated block is discarded, as WHATWG requires: an event
only exists once its blank line arrived.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = [
    "SSEDecoder",
    "SSELineDecoder",
    "SSELineTooLong",
    "SSEStreamDecoder",
    "ServerSentEvent",
    "aiter_sse",
]

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


class SSELineTooLong(ValueError):
    """A line grew past the decoder's `max_line_length` without a line ending."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event. `event` is "message" when the block had no `event:` field."""

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class SSELineDecoder:
    """Splits incoming chunks into lines on `\\r\\n`, `\\r` or `\\n` only.

    Args:
        max_line_length: raise `SSELineTooLong` when a pending line exceeds this many
            characters (`None`: unlimited). Guards against an upstream that never sends a newline.
    """

    def __init__(self, *, max_line_length: int | None = None) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []
        self._pending_len = 0
        self._skip_lf = False
        self._started = False
        self._max = max_line_length

    def decode(self, chunk: bytes | str) -> list[str]:
        """Return the lines completed by `chunk` (without their line endings)."""
        text = self._utf8.decode(chunk) if isinstance(chunk, bytes) else chunk
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == _BOM:
                text = text[1:]
        if self._skip_lf:
            # The previous chunk ended in "\r" and that line was already emitted; a "\n" right
            # here is the second half of the same CRLF, not an empty line.
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        parts = _LINE_END.split(text)
        tail = parts.pop()
        if not parts:
            self._hold(tail)
            return parts
        if self._pending:
            parts[0] = self._take_pending() + parts[0]
        # A lone "\r" at the very end ends a line now (no waiting for the next chunk), but may
        # still be followed by "\n".
        self._skip_lf = not tail and text[-1] == "\r"
        self._hold(tail)
        return parts

    def flush(self) -> list[str]:
        """End of input: return the unterminated last line, if any."""
        self._hold(self._utf8.decode(b"", final=True))
        return [self._take_pending()] if self._pending else []

    def _hold(self, fragment: str) -> None:
        if not fragment:
            return
        self._pending.append(fragment)
        self._pending_len += len(fragment)
        if self._max is not None and self._pending_len > self._max:
            raise SSELineTooLong(f"an event-stream line exceeded {self._max} characters")

    def _take_pending(self) -> str:
        line = "".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        return line


class SSEDecoder:
    """Applies the WHATWG field rules to lines; `decode` returns an event on a blank line."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._last_event_id = ""
        self._retry: int | None = None

    @property
    def pending(self) -> bool:
        """True while a block has fields but its blank line has not arrived yet."""
        return self._has_data or bool(self._event)

    @property
    def last_event_id(self) -> str:
        """The last `id` seen; per spec it persists across events."""
        return self._last_event_id

    def decode(self, line: str) -> ServerSentEvent | None:
        """Feed one line (no line ending). Returns the event a blank line dispatches, if any."""
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        # Any other field name is ignored (WHATWG).
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, retry = self._event, self._retry
        self._event = ""
        self._retry = None
        if not self._has_data:
            # Deviation (see module docstring): surface `event: ping`-style blocks.
            return ServerSentEvent(event=event, data="", id=self._last_event_id, retry=retry) if event else None
        data = "\n".join(self._data)
        self._data = []
        self._has_data = False
        return ServerSentEvent(event=event or "message", data=data, id=self._last_event_id, retry=retry)


class SSEStreamDecoder:
    """Chunks in, events out: an `SSELineDecoder` feeding an `SSEDecoder`.

    Example:
        decoder = SSEStreamDecoder()
        for chunk in chunks:
            for event in decoder.feed(chunk):
                ...
        decoder.close()  # discards an unterminated block, per WHATWG
    """

    def __init__(self, *, max_line_length: int | None = None) -> None:
        self._lines = SSELineDecoder(max_line_length=max_line_length)
        self._events = SSEDecoder()

    def feed(self, chunk: bytes | str) -> list[ServerSentEvent]:
        """Return the events completed by `chunk`."""
        out: list[ServerSentEvent] = []
        decode = self._events.decode
        for line in self._lines.decode(chunk):
            event = decode(line)
            if event is not None:
                out.append(event)
        return out

    def close(self) -> bool:
        """End of stream. Returns True when an unterminated block was discarded."""
        for line in self._lines.flush():
            self._events.decode(line)
        return self._events.pending


async def aiter_sse(chunks: AsyncIterable[bytes | str]) -> AsyncIterator[ServerSentEvent]:
    """Decode an async iterable of chunks into events (convenience for simple callers)."""
    decoder = SSEStreamDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    decoder.close()
