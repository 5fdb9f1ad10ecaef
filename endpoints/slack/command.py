"""The `command` job: a slash command's answer, delivered through its `response_url`.

The HTTP response to the command was the ephemeral "…thinking" acknowledgement: the engine's
`original` message, replaced (`replace_original`) by up to `slash_updates` partial answers and
then the final one; pages past the first go out as further ephemeral messages. A response_url
takes at most 5 posts within 30 minutes (platforms.md §1.9), counted in storage so a rerun
after a crash counts what was already spent; the engine keeps one use for the final answer and,
when the uses run out before the answer does, says where it was cut, never silently.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from endpoints.slack.budget import RESPONSE_URL_WINDOW, UseBudget
from endpoints.slack.events import SlashCommand
from endpoints.slack.settings import SlackSettings
from endpoints.slack.thread import answer_rules
from gateway.plugin import (
    ChatRules,
    Context,
    JobError,
    JobInfo,
    MemoryMessages,
    MessageRef,
    RateLimited,
    RetryJob,
    deliver,
    retry_after_seconds,
)

__all__ = ["SlashReply", "answer_command"]

TRUNCATED = "_(The answer is longer than a slash command reply can hold; mention me to get all of it.)_"


class SlashReply:
    """A slash command's ephemeral messages, through its response_url: each use counted in
    storage against the URL's budget before it is made."""

    original: MessageRef | None = "original"
    native = None

    def __init__(self, ctx: Context[SlackSettings], command: SlashCommand, rules: ChatRules) -> None:
        self._ctx = ctx
        self._url = command.response_url
        self._key = "uses:" + command.key
        self._budget = UseBudget(command.received_at)
        self._closed = False  # the URL refused an answer or ran out: nothing more is sent
        self._posts = 0
        self.rules = rules

    @property
    def used(self) -> int:
        return self._budget.used

    async def load(self) -> None:
        self._budget.used = int(await self._ctx.storage.get(self._key) or 0)

    async def post(self, text: str) -> MessageRef:
        await self._send(text, replace=False)
        self._posts += 1
        return f"ephemeral-{self._posts}"

    async def edit(self, ref: MessageRef, text: str) -> None:
        await self._send(text, replace=True)  # only the original can be replaced

    async def delete(self, ref: MessageRef) -> None:
        """Never asked for: ephemeral messages other than the original can't be changed (edits_posts=False)."""

    def typing(self) -> None:
        return None

    def writes_left(self) -> int:
        left = 0 if self._closed else self._budget.remaining(self._ctx.clock.time())
        if left == 0 and not self._closed:
            self._closed = True  # logged once
            self._ctx.logger.error("the response_url of a slash command is used up or expired; the rest is dropped")
        return left

    async def _send(self, text: str, *, replace: bool) -> None:
        body = {"response_type": "ephemeral", "replace_original": replace, "text": text}
        # Counted before sending: a crash after the post must not let a rerun overspend.
        self._budget.used = await self._ctx.storage.incr(self._key, ttl=RESPONSE_URL_WINDOW)
        try:
            response = await self._ctx.http.post(self._url, json=body, timeout=10.0)
        except httpx.HTTPError as exc:
            raise RetryJob(f"response_url unreachable: {exc.__class__.__name__}") from None
        if response.status_code == 429:  # not a use: the engine makes it again after Retry-After
            self._budget.used = await self._ctx.storage.incr(self._key, -1, ttl=RESPONSE_URL_WINDOW)
            raise RateLimited(
                "response_url rate limit", retry_after=retry_after_seconds(response.headers.get("retry-after"))
            )
        if response.status_code >= 500:
            raise RetryJob(f"response_url answered {response.status_code}", after=5.0)
        if response.status_code >= 400:
            self._closed = True  # nothing more goes to a URL that refuses
            self._ctx.logger.error(
                "the response_url refused the answer: %s %s", response.status_code, response.text[:100]
            )


def slash_rules(settings: SlackSettings) -> ChatRules:
    """An answer in a slash command's replies: the first message updated while it streams."""
    return replace(
        answer_rules(settings),
        placeholder=None,
        edits_posts=False,
        max_updates=settings.slash_updates,
        partial_suffix=" …",
        truncated_note=TRUNCATED,
        rate_limit_attempts=3,
    )


async def answer_command(job: JobInfo, ctx: Context[SlackSettings]) -> dict[str, Any]:
    """Answer a slash command (a `SlashCommand` payload) through its response_url."""
    command = SlashCommand.from_payload(job.payload)
    settings = ctx.settings
    if not settings.allows_response_url(command.response_url):
        raise JobError("the response_url does not point at Slack")
    reply = SlashReply(ctx, command, slash_rules(settings))
    await reply.load()
    answer = ctx.apps.stream(command.text, user=command.dify_user, conversation_key=command.conversation_key)
    try:
        done = await deliver(answer, reply, clock=ctx.clock, posted=MemoryMessages(), fence=job.fence)
    except RateLimited:
        raise RetryJob("response_url kept answering 429") from None
    status = "answered" if done.failure is None else "failed"
    return {"status": status, "messages": done.messages, "uses": reply.used}
