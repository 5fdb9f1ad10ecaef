"""The `answer` job: one Slack message in, one streamed answer out, in the message's thread.

Idempotent by construction: the job's key is the event's `event_id` (Slack's retries and
replicas share one job); the message itself is claimed in storage (a mention in a followed
thread arrives as two events); the messages posted are remembered under the job's id, so a rerun
after a crash edits them rather than answering twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from endpoints.slack.client import SlackOut, bot_user_id, open_client, slack_failures
from endpoints.slack.events import Trigger, thread_key
from endpoints.slack.render import hide_reasoning, is_reset, slack_to_plain
from endpoints.slack.settings import SlackSettings
from endpoints.slack.sinks import EditSink, NativeSink, Sink
from gateway.plugin import Context, EditThrottle, GatewayError, JobInfo, Overloaded, Storage

__all__ = ["Outcome", "answer_event", "failure_note", "stream_answer"]

CLAIM_TTL = 24 * 3600.0
RESET_DONE = "Conversation reset: your next message here starts a new conversation."
ASK_SOMETHING = "Ask me something: mention me with your question."


@dataclass(slots=True)
class Outcome:
    """The text to show at the end, and the failure that cut it short (if any)."""

    text: str
    failure: GatewayError | None = None


@dataclass(slots=True)
class _Live:
    text: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def failure_note(exc: GatewayError, partial: bool) -> str:
    """A short, readable note for the person in Slack; the detail goes to the log."""
    code = getattr(exc, "upstream_code", None) or exc.code
    if partial:
        return f"_⚠️ The answer was cut short ({code}). Please ask again._"
    return f"_⚠️ Sorry, I couldn't get an answer from the app ({code}). Please try again in a moment._"


def _visible(text: str, settings: SlackSettings, *, partial: bool) -> str:
    return text if settings.show_reasoning else hide_reasoning(text, partial=partial)


async def stream_answer(
    ctx: Context,
    query: str,
    *,
    user: str,
    conversation_key: str,
    show: Callable[[str], Awaitable[None]],
) -> Outcome:
    """Ask the bound app and call `show` with the text so far, at most once per `edit_interval`.

    Dify failures don't raise: they come back in the outcome, with the text shown so far and a
    note to append, and are logged.
    """
    settings: SlackSettings = ctx.settings
    live = _Live()

    async def pump() -> str:
        async with ctx.apps.stream(query, user=user, conversation_key=conversation_key) as stream:
            async for delta in stream:
                if delta.kind == "text":
                    live.text += delta.text
                elif delta.kind == "replace":
                    live.text = delta.text
                else:
                    continue  # reasoning, agent thoughts, progress, pings: not shown
                live.changed.set()
            return stream.answer.text

    reader = asyncio.create_task(pump())
    throttle = EditThrottle(settings.edit_interval, ctx.clock)
    throttle.mark()  # the placeholder (or status) was just sent
    try:
        while await _until(reader, live.changed.wait()):
            if (delay := throttle.wait_time()) > 0 and not await _until(reader, ctx.clock.sleep(delay)):
                break
            live.changed.clear()
            await show(_visible(live.text, settings, partial=True))
            throttle.mark()
        return Outcome(_visible(reader.result(), settings, partial=False))
    except Overloaded:
        raise  # the gateway is full: the job runs again after Retry-After, no failure note
    except GatewayError as exc:
        ctx.logger.warning("the Dify app failed to answer: %s: %s", exc.code, exc.message)
        partial = _visible(live.text, settings, partial=False).strip()
        note = failure_note(exc, bool(partial))
        return Outcome(f"{partial}\n\n{note}" if partial else note, exc)
    finally:
        if not reader.done():  # Slack failed midway: leaving the stream stops the Dify task
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def _until(reader: asyncio.Task[str], waiting: Awaitable[Any]) -> bool:
    """Wait for `waiting` unless the answer ends first; True when `waiting` came first."""
    other = asyncio.ensure_future(waiting)
    try:
        await asyncio.wait({reader, other}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        other.cancel()
    return not reader.done()


async def claim(storage: Storage, key: str, owner: str) -> bool:
    """Take `key` for `owner` (a job id); True also when this job took it on an earlier attempt."""
    if await storage.set_if_absent(key, owner, ttl=CLAIM_TTL):
        return True
    return await storage.get(key) == owner


async def _sink(out: SlackOut, trigger: Trigger, ctx: Context) -> Sink:
    settings: SlackSettings = ctx.settings
    earlier = await out.load()
    for posted in earlier:  # a stream of a crashed attempt can't be resumed: take it back
        if posted.kind == "stream" or settings.native_streaming:
            await out.forget(posted.ts)
    if settings.native_streaming:
        return NativeSink(
            out,
            limit=settings.stream_limit,
            edit_limit=settings.message_limit,
            thinking=settings.thinking_text,
            team=trigger.team,
            user=trigger.user,
            in_channel=not trigger.is_dm,
            logger=ctx.logger,
        )
    reuse = [p.ts for p in out.posted if p.kind == "post"]
    return EditSink(out, limit=settings.message_limit, thinking=settings.thinking_text, reuse=reuse)


async def answer_event(job: JobInfo, ctx: Context) -> dict[str, Any]:
    """Answer a mention, a DM or a thread reply (a `Trigger` payload)."""
    trigger = Trigger.from_payload(job.payload)
    settings: SlackSettings = ctx.settings
    if not await claim(ctx.storage, f"msg:{trigger.channel}:{trigger.ts}", job.id):
        return {"status": "duplicate"}
    async with open_client(settings, ctx.clock, job.fence) as client, slack_failures(ctx):
        bot = trigger.bot_user_id or await bot_user_id(client, ctx.storage)
        if trigger.user == bot:
            return {"status": "ignored", "reason": "the bot's own message"}
        query = slack_to_plain(trigger.text, bot)
        out = SlackOut(client, ctx.storage, job, trigger.channel, trigger.thread_ts)
        sink = await _sink(out, trigger, ctx)
        if settings.follow_threads:
            ttl = settings.thread_ttl_hours * 3600
            await ctx.storage.set(thread_key(trigger.team, trigger.channel, trigger.thread_ts), "1", ttl=ttl)
        if is_reset(query) or not query:
            if query:
                await ctx.apps.reset(trigger.conversation_key, user=trigger.dify_user)  # the speaker's own only
            await sink.finish(RESET_DONE if query else ASK_SOMETHING)
            return {"status": "reset" if query else "empty"}
        await sink.begin()
        outcome = await stream_answer(
            ctx, query, user=trigger.dify_user, conversation_key=trigger.conversation_key, show=sink.show
        )
        messages = await sink.finish(outcome.text)
    status = "answered" if outcome.failure is None else "failed"
    return {"status": status, "messages": messages}
