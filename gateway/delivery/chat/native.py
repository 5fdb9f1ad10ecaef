"""An answer through the platform's native streaming (Slack's chat.startStream/appendStream/stopStream).

A native stream appends: only new text is sent, and what was sent cannot change. So a stream
that nears the platform's limit ends at a clean break in the new text (a code block left open is
closed there and reopened in the next stream), and the answer goes on in a new stream. When the
text is replaced (output moderation), the streamed messages are deleted and the replacement is
shown in edited messages; when the platform refuses streaming or a stream expired
(`StreamUnavailable`), the rest of the answer goes on in edited messages, as @slack/web-api
does (platforms.md §1.8).

A rerun on a platform that resumes streams (`ResumableStream`, Lark's CardKit cards) is given the
streams the earlier run opened (`earlier`): they are used, in order, before any new one is
started, and those left over are deleted once the answer ended (or gave up streaming).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from gateway.delivery.chat.adapter import MessageRef, NativeStream, ResumableStream, StreamUnavailable
from gateway.delivery.chat.pages import Pages
from gateway.delivery.chat.posted import Recorder
from gateway.delivery.chat.text import FENCE, cut_point, last_break, open_fence
from gateway.delivery.chat.writes import Writes
from gateway.exceptions import GatewayError

__all__ = ["NativePages"]

_CLOSE = "\n" + FENCE
_REOPEN = FENCE + "\n"
_MIN_ROOM = 50  # within this (or a tenth of the limit) of a stream's end, it ends at the next clean break


class NativePages:
    """The streamed messages showing one text; `delete` removes a streamed message, `fallback`
    makes the edited messages that take over."""

    def __init__(
        self,
        stream: NativeStream,
        writes: Writes,
        record: Recorder,
        *,
        delete: Callable[[MessageRef], Awaitable[None]],
        fallback: Callable[[], Pages],
        protect: Callable[[str, int, int], int] | None = None,
        earlier: Sequence[MessageRef] = (),
    ) -> None:
        self._stream = stream
        self._resume = stream.resume if isinstance(stream, ResumableStream) else None
        self._earlier = list(earlier) if self._resume is not None else []  # streams to show again, in order
        self._writes = writes
        self._record = record
        self._delete = delete
        self._make_fallback = fallback
        self._protect = protect
        self._limit = stream.limit
        self._sent = ""  # the Markdown streamed so far
        self._current: MessageRef | None = None  # the open stream
        self._length = 0  # characters in the open stream, closing/reopening fences included
        self._reopen = ""
        self._streams = 0
        self._fallback: Pages | None = None
        self._carry = ""  # a code block to reopen at the start of the fallback's text
        self._offset = 0  # where the fallback's text starts in the answer

    @property
    def shown(self) -> str:
        return self._sent if self._fallback is None else self._sent[: self._offset] + self._fallback.shown

    @property
    def messages(self) -> int:
        return self._streams + (0 if self._fallback is None else self._fallback.messages)

    async def show(self, text: str, *, final: bool) -> bool:
        """Stream what `text` adds to what was sent; at the end (`final`) close the open stream."""
        if self._fallback is not None:
            return await self._fallback.show(self._carry + text[self._offset :], final=final)
        if not text.startswith(self._sent):  # replaced: take back what was streamed
            await self._give_up(delete=True)
            return await self._fall_back(0).show(text, final=final)
        try:
            wrote = await self._push(text[len(self._sent) :])
        except StreamUnavailable:
            await self._give_up(delete=False)
            return await self._fall_back(len(self._sent)).show(self._carry + text[self._offset :], final=final)
        if final and self._current is not None:
            await self._writes(partial(self._stream.stop, self._current))
            self._current = None
        if final:
            await self._drop_earlier()
        return wrote

    async def _drop_earlier(self) -> None:
        """Delete the streams of an earlier run that this one did not need."""
        while self._earlier:
            ref = self._earlier.pop()
            await self._writes(partial(self._delete, ref))
            await self._record.remove(ref)

    def _fall_back(self, offset: int) -> Pages:
        self._offset = offset
        self._carry = open_fence(self._sent[:offset])
        self._fallback = self._make_fallback()
        return self._fallback

    async def _give_up(self, *, delete: bool) -> None:
        """Close the open stream (best effort); with `delete`, remove every streamed message."""
        if self._current is not None:
            with contextlib.suppress(GatewayError):
                await self._writes(partial(self._stream.stop, self._current))
            self._current = None
        await self._drop_earlier()
        if delete:
            for posted in [m for m in self._record.messages if m.kind == "stream"]:
                await self._writes(partial(self._delete, posted.ref))
                await self._record.remove(posted.ref)
            self._streams = 0

    async def _push(self, pending: str) -> bool:
        wrote = False
        while pending:
            if self._current is None:
                # A stream never starts with blank text: hold it until there is more.
                if not pending.strip():
                    return wrote
                lead = len(pending) - len(pending.lstrip("\n" if open_fence(self._sent) else None))
                self._sent, pending = self._sent + pending[:lead], pending[lead:]
            room = self._limit - self._length - len(self._reopen) - len(_CLOSE)
            if len(pending) <= room - max(_MIN_ROOM, self._limit // 10):
                await self._append(pending)
                return True
            # Near the end of this message: end it at a clean break in the new text (what was
            # streamed can't move), or go on until one comes, or cut hard at the limit.
            cut = last_break(pending, room, floor=0, protect=self._protect) if self._current is not None else None
            if cut is None and len(pending) <= room:
                await self._append(pending)
                return True
            end = cut_point(pending, room, protect=self._protect) if cut is None else cut
            await self._append(pending[:end], close=True)
            pending = pending[end:]
            wrote = True
        return wrote

    async def _append(self, piece: str, *, close: bool = False) -> None:
        after = self._sent + piece
        closer = _CLOSE if close and open_fence(after) else ""
        if self._current is None:
            content = self._reopen + piece + closer
            if self._earlier and self._resume is not None:  # shown again: it is in the record already
                await self._writes(partial(self._resume, self._earlier[0], content))
                self._current = self._earlier.pop(0)
            else:
                self._current = await self._writes(partial(self._stream.start, content))
                await self._record.add(self._current, "stream")
            self._streams += 1
            self._length, self._reopen = len(content), ""
        elif content := piece + closer:
            await self._writes(partial(self._stream.append, self._current, content))
            self._length += len(content)
        self._sent = after  # only once the platform has it: a fallback goes on from here
        if close:
            await self._writes(partial(self._stream.stop, self._current))
            self._current, self._length = None, 0
            self._reopen = _REOPEN if closer else ""
