"""The chat-delivery engine: one streamed Dify answer shown on a chat platform, through its adapter.

`deliver` opens the answer, reads it in a task of its own and shows the text so far at most once
per `ChatRules.edit_interval` on the injected clock (a pause in the answer does not hold back
what arrived; a fast answer costs one write per interval), then always makes a final render:

- `text` deltas append, `replace` deltas replace (output moderation); other deltas don't show;
- long answers are paged at the platform's limit, code fences closed and reopened
  (`gateway.delivery.chat.pages`), or streamed natively when the adapter can
  (`gateway.delivery.chat.native`), or previewed in drafts and posted at the end
  (`gateway.delivery.chat.drafts`);
- every write goes through the fence and honours `RateLimited.retry_after`
  (`gateway.delivery.chat.writes`);
- a rerun of the job edits the messages the record (`PostedMessages`) says were posted (and goes
  on in the streams it opened when the platform can resume them, `ResumableStream`);
- when Dify fails, the failure note follows what was shown (or is shown alone);
- when the adapter's time is up (`ChatRules.expires_at`), the answer goes on through `handover`
  or ends with the expired note, and reading stops (leaving the stream stops the Dify task).

Example (a job handler)::

    done = await deliver(
        ctx.apps.stream(question, user=user, conversation_key=key),
        SlackThread(client, channel, thread_ts),
        clock=ctx.clock,
        posted=StoredMessages(ctx.storage, f"posted:{job.id}", fence=job.lease),
        fence=job.fence,  # raises once another run owns the job
    )
    return {"status": "failed" if done.failure else "answered", "messages": done.messages}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

from gateway.clock import Clock
from gateway.delivery.chat.adapter import ChatAdapter, Draft, Fence, ResumableStream
from gateway.delivery.chat.drafts import DraftPages
from gateway.delivery.chat.native import NativePages
from gateway.delivery.chat.pages import Pages
from gateway.delivery.chat.posted import PostedMessage, PostedMessages, Recorder
from gateway.delivery.chat.text import EditThrottle, open_fence
from gateway.delivery.chat.writes import Writes
from gateway.exceptions import GatewayError, Overloaded

if TYPE_CHECKING:  # type names only: the engine does not load the Dify client
    from gateway.dify.models import Answer, Delta

__all__ = ["AnswerSource", "Delivered", "Handover", "deliver"]

logger = logging.getLogger(__name__)


class AnswerSource(Protocol):
    """A streamed answer (`gateway.dify.stream.DifyAnswerStream` is one)."""

    def deltas(self) -> AsyncIterator[Delta]:
        """The answer's steps as they arrive."""
        ...

    @property
    def answer(self) -> Answer:
        """The assembled answer, once the deltas are read."""
        ...


@dataclass(frozen=True, slots=True)
class Handover:
    """Where the answer goes on once the first adapter's time is up (Discord: channel messages
    with the bot token after the interaction token), with the record of that adapter's messages."""

    adapter: ChatAdapter
    posted: PostedMessages


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a delivery showed.

    Attributes:
        text: the final text (Markdown), failure or expired note included.
        messages: how many messages show it.
        answer: the assembled answer, when the stream completed.
        failure: the error that cut the answer short (the note says so on screen).
        cut_off: the adapter's time ran out with nothing to take over; the rest was not read.
        handed_over: the answer went on through the handover adapter.
    """

    text: str
    messages: int
    answer: Answer | None = None
    failure: GatewayError | None = None
    cut_off: bool = False
    handed_over: bool = False


async def deliver(
    answer: AbstractAsyncContextManager[AnswerSource],
    adapter: ChatAdapter,
    *,
    clock: Clock,
    posted: PostedMessages,
    fence: Fence | None = None,
    handover: Handover | None = None,
    draft: Draft | None = None,
) -> Delivered:
    """Show a streamed answer through `adapter`; see the module docstring.

    Args:
        answer: the answer to open, e.g. `ctx.apps.stream(...)` (failing to open it is shown as
            a failure note, like a failure midway). An open stream can be passed as
            `contextlib.nullcontext(stream)`.
        adapter: the platform's calls and rules.
        clock: the gateway's clock; all pacing and waiting happens on it.
        posted: the record of the messages posted, kept across runs of the job.
        fence: awaited before every platform write; what it raises ends the delivery at once.
        handover: where the answer goes on past `adapter.rules.expires_at`.
        draft: the platform's preview of messages being written (Telegram's sendMessageDraft):
            the answer is previewed there while it streams and posted at the end (unless the
            adapter streams natively, or messages exist already: a rerun edits them).

    Raises:
        Whatever `fence` or the adapter raise (a `RateLimited` only once its attempts are spent),
        and `Overloaded` from the answer: the gateway is full, the job runs again (no note).
    """
    delivery = _Delivery(adapter, clock=clock, posted=posted, fence=fence, handover=handover, draft=draft)
    return await delivery.run(answer)


class _Reader:
    """Reads the answer into `text`; every delta (a ping too) sets `tick`."""

    def __init__(self) -> None:
        self.text = ""
        self.version = 0  # bumped by every change of `text`
        self.tick = asyncio.Event()
        self.answer: Answer | None = None
        self.failure: GatewayError | None = None

    async def run(self, source: AbstractAsyncContextManager[AnswerSource]) -> None:
        try:
            async with source as stream:
                async for delta in stream.deltas():
                    if delta.kind == "text":
                        self.text += delta.text
                        self.version += 1
                    elif delta.kind == "replace":
                        self.text = delta.text
                        self.version += 1
                    self.tick.set()
                self.answer = stream.answer
        except Overloaded:
            raise  # the gateway is full: not the answer's failure, the job runs again (no note)
        except GatewayError as exc:
            logger.warning("the answer failed: %s: %s", exc.code, exc.message)
            self.failure = exc


async def _first(reader: asyncio.Task[None], waiting: Awaitable[object]) -> bool:
    """Wait for `waiting` unless the reader ends first; True when `waiting` came first."""
    other = asyncio.ensure_future(waiting)
    try:
        await asyncio.wait({reader, other}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not other.done():
            other.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await other
    return not reader.done()


class _Delivery:
    def __init__(
        self,
        adapter: ChatAdapter,
        *,
        clock: Clock,
        posted: PostedMessages,
        fence: Fence | None,
        handover: Handover | None,
        draft: Draft | None = None,
    ) -> None:
        self._adapter = adapter
        self._draft = draft
        self._rules = adapter.rules
        self._visible = adapter.rules.visible
        self._clock = clock
        self._posted = posted
        self._fence = fence
        self._handover = handover
        self._throttle = EditThrottle(self._rules.edit_interval, clock)
        self._writes = Writes(clock, self._throttle, fence, attempts=self._rules.rate_limit_attempts)
        self._reader = _Reader()
        self._target: Pages | NativePages | DraftPages | None = None
        self._offset = 0  # where the current adapter's part of the text starts
        self._carry = ""  # a code block to reopen at the start of that part
        self._earlier_messages = 0  # messages of the adapter handed over from
        self._shown_version = 0
        self._cut_off = False
        self._handed_over = False

    async def run(self, source: AbstractAsyncContextManager[AnswerSource]) -> Delivered:
        target = self._target = await self._open(self._adapter, self._posted)
        async with AsyncExitStack() as typing:
            indicator = self._adapter.typing()
            if indicator is not None:
                if self._fence is not None:
                    await self._fence()
                await typing.enter_async_context(indicator)
            if self._rules.placeholder is not None and isinstance(target, Pages) and target.empty:
                await target.placeholder(self._rules.placeholder)
                self._throttle.mark()
            reader = asyncio.create_task(self._reader.run(source))
            try:
                await self._follow(reader, typing)
                if reader.done() and not reader.cancelled():
                    reader.result()  # an error that is not the answer's own (a bug) goes up
                text = self._final_text()
                await typing.aclose()
                await self._throttle.wait()
                if not self._cut_off and self._expired() and not await self._expire():
                    text = _with_note(text, self._rules.expired_note)
                await self._show(text, final=True)
            finally:
                if not reader.done():  # leaving the answer's block stops the Dify task
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
        return Delivered(
            text=text,
            messages=self._earlier_messages + self._current.messages,
            answer=self._reader.answer,
            failure=self._reader.failure,
            cut_off=self._cut_off,
            handed_over=self._handed_over,
        )

    @property
    def _current(self) -> Pages | NativePages | DraftPages:
        assert self._target is not None
        return self._target

    async def _open(self, adapter: ChatAdapter, posted: PostedMessages) -> Pages | NativePages | DraftPages:
        """The messages of `adapter`: those of an earlier run taken over, or natively streamed ones."""
        earlier = await posted.load()
        kept = [m for m in earlier if m.kind == "message"]
        # Streams of a platform that resumes them are shown again (when no edited message took over).
        resumable = isinstance(adapter.native, ResumableStream) and not kept and adapter.original is None
        streams = [m for m in earlier if m.kind == "stream"] if resumable else []
        record = Recorder(posted, kept or streams)
        if not resumable:
            for stale in (m for m in earlier if m.kind == "stream"):  # a stream can't be resumed: take it back
                await self._writes(partial(adapter.delete, stale.ref))
            if len(kept) != len(earlier):
                await posted.save(kept)

        def pages(reuse: list[PostedMessage]) -> Pages:
            return Pages(adapter, self._writes, record, earlier=[m.ref for m in reuse])

        if kept or adapter.original is not None:
            return pages(kept)
        if adapter.native is None:
            draft, self._draft = self._draft, None  # only the first adapter's messages are drafted
            return pages([]) if draft is None else DraftPages(draft, pages([]), self._writes)
        return NativePages(
            adapter.native,
            self._writes,
            record,
            delete=adapter.delete,
            fallback=partial(pages, []),
            protect=adapter.rules.protect,
            earlier=[m.ref for m in streams],
        )

    async def _follow(self, reader: asyncio.Task[None], typing: AsyncExitStack) -> None:
        """Show the answer as it grows, until it ends (or the time is up and nothing takes over)."""
        state = self._reader
        while await _first(reader, state.tick.wait()):
            state.tick.clear()
            if self._expired():
                if await self._expire():
                    continue
                return  # cut off
            if state.version == self._shown_version:
                continue
            delay = self._throttle.wait_time()
            if delay > 0 and not await _first(reader, self._clock.sleep(delay)):
                return
            version = state.version
            if await self._show(self._visible(state.text, False), final=False):
                self._throttle.mark()
                await typing.aclose()  # the first words are shown: no more "typing…"
            self._shown_version = version

    async def _show(self, text: str, *, final: bool) -> bool:
        return await self._current.show(self._carry + text[self._offset :], final=final)

    def _expired(self) -> bool:
        deadline = self._rules.expires_at
        return deadline is not None and self._clock.time() >= deadline

    async def _expire(self) -> bool:
        """The adapter's time is up: hand over (True) or not (False: the caller ends the answer)."""
        handover, self._handover = self._handover, None
        if handover is None:
            self._cut_off = True
            return False
        target = self._current
        text = self._carry + self._visible(self._reader.text, False)[self._offset :]
        # Only what shows already is finished here: the adapter may have little time left.
        shown = target.shown if text.startswith(target.shown) else text
        if shown.strip():
            await target.show(shown, final=True)
            self._offset += len(shown) - len(self._carry)
            self._carry = open_fence(shown)
        else:
            await target.show(self._rules.continued_note, final=True)
        self._earlier_messages += target.messages
        self._adapter, self._rules = handover.adapter, handover.adapter.rules
        self._target = await self._open(handover.adapter, handover.posted)
        self._handed_over = True
        return True

    def _final_text(self) -> str:
        state, rules = self._reader, self._rules
        if self._cut_off:
            return _with_note(self._visible(state.text, True), rules.expired_note)
        if state.failure is not None:
            shown = self._visible(state.text, True)
            return _with_note(shown, rules.failure_note(state.failure, bool(shown.strip())))
        text = self._visible(state.answer.text if state.answer is not None else state.text, True)
        return text if text.strip() else rules.empty_text


def _with_note(text: str, note: str) -> str:
    """`note` in a paragraph after `text`, which stays as it is: what was streamed natively can't change."""
    if not text.strip():
        return note
    return text + "\n" * max(0, 2 - (len(text) - len(text.rstrip("\n")))) + note
