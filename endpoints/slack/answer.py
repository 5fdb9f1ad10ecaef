"""The `answer` job: one Slack message in, one streamed answer out, in the message's thread.

Idempotent by construction: the job's key is the event's `event_id` (Slack's retries and
replicas share one job); the message itself is claimed in storage (a mention in a followed
thread arrives as two events); the messages posted are recorded under the job's id, written
fenced by the run's lease, so a rerun after a crash edits them rather than answering twice, and
a run that another one took over writes nothing more. The delivery (pacing, paging, native
streaming, failure notes) is the gateway's chat engine, through `thread.SlackThread`.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from endpoints.slack.client import bot_user_id, open_client, slack_failures
from endpoints.slack.events import SlackTrigger, thread_key
from endpoints.slack.render import is_reset, slack_to_plain
from endpoints.slack.settings import SlackSettings
from endpoints.slack.thread import SlackStream, SlackThread, answer_rules
from gateway.plugin import (
    AnswerSource,
    Context,
    JobInfo,
    Lease,
    Storage,
    StoredMessages,
    claim,
    deliver,
    said,
)

__all__ = ["answer_event"]

CLAIM_TTL = 24 * 3600.0
RECORD_TTL = 2 * 24 * 3600.0
RESET_DONE = "Conversation reset: your next message here starts a new conversation."
ASK_SOMETHING = "Ask me something: mention me with your question."


async def _upgrade_record(storage: Storage, key: str, lease: Lease) -> None:
    """A record written before the chat engine (`[ts, "post"]`) in the engine's words
    (`[ts, "message"]`), so a rerun across the upgrade edits what it posted. Remove after a release."""
    raw = await storage.get(key)
    doc = json.loads(raw) if raw and '"post"' in raw else None
    if isinstance(doc, list):
        upgraded = [[item[0], "message"] if item[1:] == ["post"] else item for item in doc]
        await storage.set(key, json.dumps(upgraded), ttl=RECORD_TTL, fence=lease)


async def answer_event(job: JobInfo, ctx: Context[SlackSettings]) -> dict[str, Any]:
    """Answer a mention, a DM or a thread reply (a `SlackTrigger` payload)."""
    trigger = SlackTrigger.from_payload(job.payload)
    settings = ctx.settings
    if not await claim(ctx.storage, f"msg:{trigger.channel}:{trigger.ts}", job.id, ttl=CLAIM_TTL):
        return {"status": "duplicate"}
    connector = ctx.aiohttp_connector()  # through the upstream guard for a workspace's endpoint
    async with open_client(settings, ctx.clock, job.fence, connector=connector) as client, slack_failures(ctx):
        bot = trigger.bot_user_id or await bot_user_id(client, ctx.storage)
        if trigger.user == bot:
            return {"status": "ignored", "reason": "the bot's own message"}
        query = slack_to_plain(trigger.text, bot)
        if settings.follow_threads:
            ttl = settings.thread_ttl_hours * 3600
            await ctx.storage.set(thread_key(trigger.team, trigger.channel, trigger.thread_ts), "1", ttl=ttl)
        record = f"out:{job.id}"
        await _upgrade_record(ctx.storage, record, job.lease)
        reply = not query or is_reset(query)
        stream = (
            SlackStream(
                client,
                trigger.channel,
                trigger.thread_ts,
                limit=settings.stream_limit,
                # Streams into channels must name their recipient; DMs must not need to.
                recipient=None if trigger.is_dm else (trigger.team, trigger.user),
                logger=ctx.logger,
            )
            if settings.native_streaming
            else None
        )
        rules = answer_rules(settings)
        thread = SlackThread(
            client,
            trigger.channel,
            trigger.thread_ts,
            rules=replace(rules, placeholder=None) if reply else rules,
            native=stream,
            status=None if reply else settings.thinking_text,
        )
        if reply:
            if query:
                await ctx.apps.reset(trigger.conversation_key, user=trigger.dify_user)  # the speaker's own only
            answer: AbstractAsyncContextManager[AnswerSource] = said(RESET_DONE if query else ASK_SOMETHING)
        else:
            answer = ctx.apps.stream(query, user=trigger.dify_user, conversation_key=trigger.conversation_key)
        done = await deliver(
            answer,
            thread,
            clock=ctx.clock,
            posted=StoredMessages(ctx.storage, record, ttl=RECORD_TTL, fence=job.lease),
            fence=job.fence,
        )
    if reply:
        return {"status": "reset" if query else "empty"}
    return {"status": "answered" if done.failure is None else "failed", "messages": done.messages}
