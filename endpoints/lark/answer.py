"""The `answer` job: one Lark message in, one streamed answer out, as a reply in its thread.

Idempotent by construction: the job's key is the event's `event_id` (Lark's redeliveries and
replicas share one job), the message itself is claimed in storage, and the cards posted are
recorded under the job's id, written fenced by the run's lease, so a rerun after a crash shows
the answer in them rather than answering twice (CardKit cards are resumed, patched messages
edited). Pacing, paging, native streaming and failure notes are the chat engine's, through
`cards.LarkReply`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from endpoints.lark.api import LarkAPIError, bot_open_id, open_api
from endpoints.lark.cards import SEQUENCES_PER_RUN, CardKitStream, LarkReply, ReplyTo, card_rules
from endpoints.lark.events import LarkTrigger
from endpoints.lark.render import is_reset
from endpoints.lark.settings import LarkSettings
from gateway.plugin import (
    AnswerSource,
    Context,
    JobError,
    JobInfo,
    RateLimited,
    RetryJob,
    StoredMessages,
    claim,
    deliver,
    said,
)

__all__ = ["CARDKIT_OFF_KEY", "answer_message", "lark_failures"]

CLAIM_TTL = 24 * 3600.0
RECORD_TTL = 2 * 24 * 3600.0
CARDKIT_OFF_KEY = "cardkit_refused"
CARDKIT_OFF_TTL = 3600.0  # after a refusal, patched messages for an hour, then CardKit is tried again
RESET_DONE = "Conversation reset: your next message here starts a new conversation."
ASK_SOMETHING = "Ask me something: mention me with your question."


@contextlib.asynccontextmanager
async def lark_failures(ctx: Context[LarkSettings]) -> AsyncIterator[None]:
    """Map Lark failures to job outcomes: retry what may pass, dead-letter what can't."""
    try:
        yield
    except RateLimited as exc:
        raise RetryJob("Lark rate limit", after=exc.retry_after) from None
    except LarkAPIError as exc:
        if exc.retryable:  # unreachable or failing: a rerun shows the answer in what was posted
            raise RetryJob(f"Lark failed: {exc}") from None
        ctx.logger.error("Lark refused the answer: %s (check the app's credentials, scopes and bot)", exc)
        raise JobError(f"Lark refused: {exc}") from None


async def _source(
    ctx: Context[LarkSettings], trigger: LarkTrigger, query: str
) -> AbstractAsyncContextManager[AnswerSource]:
    """Dify's answer to `query`; or, for "reset" (the speaker's conversation only is forgotten)
    and a mention without a question, the gateway's own words."""
    if not query:
        return said(ASK_SOMETHING)
    if is_reset(query):
        await ctx.apps.reset(trigger.conversation_key, user=trigger.dify_user)
        return said(RESET_DONE)
    return ctx.apps.stream(query, user=trigger.dify_user, conversation_key=trigger.conversation_key)


async def answer_message(job: JobInfo, ctx: Context[LarkSettings]) -> dict[str, Any]:
    """Answer a p2p message or a mention in a group (a `LarkTrigger` payload)."""
    trigger = LarkTrigger.from_payload(job.payload)
    settings, storage = ctx.settings, ctx.storage
    if not await claim(storage, f"msg:{trigger.message_id}", job.id, ttl=CLAIM_TTL):
        return {"status": "duplicate"}
    api = open_api(ctx.http, settings, storage, ctx.clock, fence=job.fence)
    async with lark_failures(ctx):
        bot = await bot_open_id(api, storage)
        if trigger.sender == bot:
            return {"status": "ignored", "reason": "the bot's own message"}
        if trigger.is_group and not trigger.mentions_of(bot):
            return {"status": "ignored", "reason": "the bot is not mentioned"}
        query = trigger.question(bot)
        reply = not query or is_reset(query)
        # In groups the answer starts (or continues) the message's thread; a p2p chat is one conversation.
        in_thread = bool(trigger.thread_id) or (trigger.is_group and settings.reply_in_thread)
        target = ReplyTo(api, trigger.message_id, in_thread=in_thread)
        stream = None
        if settings.cardkit and not await storage.get(CARDKIT_OFF_KEY):
            stream = CardKitStream(
                target, limit=settings.card_limit, first_sequence=job.attempt * SEQUENCES_PER_RUN, logger=ctx.logger
            )
        cards = LarkReply(target, rules=card_rules(settings, placeholder=not reply), native=stream)
        done = await deliver(
            await _source(ctx, trigger, query),
            cards,
            clock=ctx.clock,
            posted=StoredMessages(storage, f"out:{job.id}", ttl=RECORD_TTL, fence=job.lease),
            fence=job.fence,
        )
        if stream is not None and stream.refused:
            await storage.set(CARDKIT_OFF_KEY, "1", ttl=CARDKIT_OFF_TTL)
    if reply:
        return {"status": "reset" if query else "empty"}
    return {"status": "answered" if done.failure is None else "failed", "messages": done.messages}
