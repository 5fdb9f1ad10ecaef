"""Where a streamed answer is shown in Slack: edited messages or Slack's native streaming.

Both take the answer's whole Markdown text so far (`show`), then the final text (`finish`):

- `EditSink` posts a "…thinking" placeholder and edits it (`chat.update`) as the answer grows,
  rendered as mrkdwn and split at `message_limit`; a part that fills up stays, and the answer
  continues in a new message in the thread. It can also take over the messages an earlier
  attempt of the job posted (a rerun after a crash edits them instead of posting anew).
- `NativeSink` shows the assistant status, then `chat.startStream` / `appendStream` (deltas
  only: Slack appends) / `stopStream`, starting a new stream when one reaches `stream_limit`.
  When streaming is refused or a stream expired, it falls back to an `EditSink` for the rest,
  as @slack/web-api does; when the text is replaced (output moderation), what was streamed is
  deleted and the replacement is posted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from slack_sdk.errors import SlackApiError

from endpoints.slack.client import FATAL_ERRORS, SlackOut
from endpoints.slack.render import protect_tokens, split_mrkdwn, to_mrkdwn
from gateway.plugin import FENCE, cut_point, last_break, open_fence

__all__ = ["EMPTY_ANSWER", "EditSink", "NativeSink", "Sink"]

EMPTY_ANSWER = "_(The app returned an empty answer.)_"
_CLOSE = "\n" + FENCE
_REOPEN = FENCE + "\n"
_MIN_ROOM = 50  # within this (or a tenth of the limit) of a stream's end, it ends at the next clean break


class Sink(Protocol):
    async def begin(self) -> None:
        """Show that an answer is on its way."""

    async def show(self, text: str) -> None:
        """Show the answer so far (Markdown)."""

    async def finish(self, text: str) -> int:
        """Show the final answer; returns how many messages hold it."""


class EditSink:
    """An answer in posted messages, edited as it grows."""

    def __init__(self, out: SlackOut, *, limit: int, thinking: str, reuse: Sequence[str] = ()) -> None:
        self.out = out
        self.limit = limit
        self.thinking = to_mrkdwn(thinking)
        self.messages: list[str] = list(reuse)
        self.shown: list[str | None] = [None] * len(self.messages)

    async def begin(self) -> None:
        if not self.messages:  # a rerun keeps the placeholder it posted before
            await self._apply([self.thinking])

    async def show(self, text: str) -> None:
        parts = split_mrkdwn(text, self.limit)
        if parts:
            await self._apply(parts)

    async def finish(self, text: str) -> int:
        parts = split_mrkdwn(text, self.limit) or [EMPTY_ANSWER]
        await self._apply(parts)
        for ts in self.messages[len(parts) :]:  # left over from a longer earlier attempt
            await self.out.forget(ts)
        del self.messages[len(parts) :], self.shown[len(parts) :]
        return len(parts)

    async def _apply(self, parts: list[str]) -> None:
        for index, part in enumerate(parts):
            if index >= len(self.messages):
                self.messages.append(await self.out.post(part))
                self.shown.append(part)
            elif self.shown[index] != part:
                await self.out.update(self.messages[index], part)
                self.shown[index] = part


class NativeSink:
    """An answer streamed with `chat.startStream` / `appendStream` / `stopStream`."""

    def __init__(
        self,
        out: SlackOut,
        *,
        limit: int,
        edit_limit: int,
        thinking: str,
        team: str,
        user: str,
        in_channel: bool,
        logger: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.out = out
        self.limit = limit
        self.edit_limit = edit_limit
        self.thinking = thinking
        # Streams into channels must name their recipient; DMs must not need to.
        self.recipient = (team, user) if in_channel else (None, None)
        self.logger = logger
        self.sent = ""  # the answer's Markdown streamed so far
        self.current: str | None = None  # ts of the open stream
        self.length = 0  # characters in the open stream, closing/reopening fences included
        self.reopen = ""
        self.streams = 0
        self.fallback: EditSink | None = None
        self.offset = 0  # where the fallback's text starts in the answer

    async def begin(self) -> None:
        await self.out.set_status(self.thinking)

    async def show(self, text: str) -> None:
        if self.fallback is not None:
            await self.fallback.show(text[self.offset :])
            return
        if not text.startswith(self.sent):  # replaced: take back what was streamed
            await self._give_up(delete=True)
            await self._fall_back(0).show(text)
            return
        try:
            await self._push(text[len(self.sent) :])
        except SlackApiError as exc:
            if exc.response.get("error") in FATAL_ERRORS or exc.response.status_code == 429:
                raise
            self.logger.warning("native streaming failed (%s); editing messages instead", exc.response.get("error"))
            await self._give_up(delete=False)
            await self._fall_back(len(self.sent)).show(text[self.offset :])

    async def finish(self, text: str) -> int:
        await self.show(text)
        if self.fallback is not None:
            return self.streams + await self.fallback.finish(text[self.offset :])
        if self.current is not None:
            await self.out.stop_stream(self.current)
            self.current = None
        if self.streams == 0:  # nothing (visible) was ever streamed
            return await self._fall_back(len(self.sent)).finish(EMPTY_ANSWER)
        return self.streams

    def _fall_back(self, offset: int) -> EditSink:
        self.offset = offset
        self.fallback = EditSink(self.out, limit=self.edit_limit, thinking=self.thinking)
        return self.fallback

    async def _give_up(self, *, delete: bool) -> None:
        """Close the open stream (best effort); with `delete`, remove every streamed message."""
        if self.current is not None:
            try:
                await self.out.stop_stream(self.current)
            except SlackApiError:
                pass
            self.current = None
        if delete:
            for posted in [p for p in self.out.posted if p.kind == "stream"]:
                await self.out.forget(posted.ts)
            self.streams = 0

    async def _push(self, pending: str) -> None:
        while pending:
            if self.current is None:
                # A stream never starts with blank text: hold it until there is more.
                if not pending.strip():
                    return
                lead = len(pending) - len(pending.lstrip("\n" if open_fence(self.sent) else None))
                self.sent, pending = self.sent + pending[:lead], pending[lead:]
            room = self.limit - self.length - len(self.reopen) - len(_CLOSE)
            if len(pending) <= room - max(_MIN_ROOM, self.limit // 10):
                await self._append(pending)
                return
            # Near the end of this message: end it at a clean break in the new text (what was
            # streamed can't move), or go on until one comes, or cut hard at the limit.
            cut = last_break(pending, room, floor=0, protect=protect_tokens) if self.current is not None else None
            if cut is None and len(pending) <= room:
                await self._append(pending)
                return
            end = cut_point(pending, room, protect=protect_tokens) if cut is None else cut
            await self._append(pending[:end], close=True)
            pending = pending[end:]

    async def _append(self, piece: str, *, close: bool = False) -> None:
        after = self.sent + piece
        closer = _CLOSE if close and open_fence(after) else ""
        if self.current is None:
            content = self.reopen + piece + closer
            self.current = await self.out.start_stream(content, team=self.recipient[0], user=self.recipient[1])
            self.streams += 1
            self.length, self.reopen = len(content), ""
        elif content := piece + closer:
            await self.out.append_stream(self.current, content)
            self.length += len(content)
        self.sent = after  # only once Slack has it: a fallback goes on from here
        if close:
            await self.out.stop_stream(self.current)
            self.current, self.length = None, 0
            self.reopen = _REOPEN if closer else ""
