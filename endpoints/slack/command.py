"""The `command` job: a slash command's answer, delivered through its `response_url`.

The HTTP response to the command was the ephemeral "…thinking" acknowledgement. A response_url
takes at most 5 posts within 30 minutes (platforms.md §1.9), counted in storage so a rerun
after a crash counts what was already spent: up to `slash_updates` partial answers replace the
acknowledgement (spaced by `edit_interval`, always keeping one use for the final answer), then
the final answer replaces it. An answer longer than one message continues in further ephemeral
messages while uses remain; past that it says where it was cut, never silently.
"""

from __future__ import annotations

from typing import Any

import httpx

from endpoints.slack.answer import stream_answer
from endpoints.slack.events import Command
from endpoints.slack.render import split_mrkdwn
from endpoints.slack.settings import SlackSettings
from endpoints.slack.sinks import EMPTY_ANSWER
from endpoints.slack.throttle import RESPONSE_URL_WINDOW, UseBudget
from gateway.plugin import Context, JobError, JobInfo, RetryJob, retry_after_seconds

__all__ = ["ResponseUrl", "answer_command"]

TRUNCATED = "\n\n_(The answer is longer than a slash command reply can hold; mention me to get all of it.)_"
TYPING = " …"
_ATTEMPTS = 3


class ResponseUrl:
    """Posts to one response_url, counting each use in storage against its budget."""

    def __init__(self, ctx: Context, command: Command, job: JobInfo) -> None:
        self.ctx = ctx
        self.job = job
        self.url = command.response_url
        self.key = "uses:" + command.key
        self.budget = UseBudget(command.received_at)

    async def load(self) -> None:
        self.budget.used = int(await self.ctx.storage.get(self.key) or 0)

    def can_spare(self, keep: int) -> bool:
        return self.budget.can_spare(self.ctx.clock.time(), keep)

    def remaining(self) -> int:
        return self.budget.remaining(self.ctx.clock.time())

    async def send(self, body: dict[str, Any]) -> bool:
        """POST `body`; False when the budget or the URL is used up (logged)."""
        if self.remaining() <= 0:
            self.ctx.logger.error("the response_url of a slash command is used up or expired; answer dropped")
            return False
        await self.job.fence()
        # Counted before sending: a crash after the post must not let a rerun overspend.
        self.budget.used = await self.ctx.storage.incr(self.key, ttl=RESPONSE_URL_WINDOW)
        for attempt in range(_ATTEMPTS):
            if attempt:
                await self.job.fence()  # the wait may have outlasted the lease
            try:
                response = await self.ctx.http.post(self.url, json=body, timeout=10.0)
            except httpx.HTTPError as exc:
                raise RetryJob(f"response_url unreachable: {exc.__class__.__name__}") from None
            if response.status_code == 429:
                await self.ctx.clock.sleep(retry_after_seconds(response.headers.get("retry-after")))
                continue
            if response.status_code >= 500:
                raise RetryJob(f"response_url answered {response.status_code}", after=5.0)
            if response.status_code >= 400:
                self.ctx.logger.error(
                    "the response_url refused the answer: %s %s", response.status_code, response.text[:100]
                )
                return False
            return True
        raise RetryJob("response_url kept answering 429")


def _message(text: str, *, replace: bool) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": replace, "text": text}


async def answer_command(job: JobInfo, ctx: Context) -> dict[str, Any]:
    """Answer a slash command (a `Command` payload) through its response_url."""
    command = Command.from_payload(job.payload)
    settings: SlackSettings = ctx.settings
    if not settings.allows_response_url(command.response_url):
        raise JobError("the response_url does not point at Slack")
    target = ResponseUrl(ctx, command, job)
    await target.load()
    updates = 0

    async def show(text: str) -> None:
        nonlocal updates
        parts = split_mrkdwn(text, settings.message_limit)
        if not parts or updates >= settings.slash_updates or not target.can_spare(keep=1):
            return
        updates += 1
        await target.send(_message(parts[0] + TYPING, replace=True))

    outcome = await stream_answer(
        ctx, command.text, user=command.dify_user, conversation_key=command.conversation_key, show=show
    )
    parts = split_mrkdwn(outcome.text, settings.message_limit) or [EMPTY_ANSWER]
    room = target.remaining()
    if len(parts) > room > 0:
        parts = parts[:room]
        parts[-1] += TRUNCATED
    sent = 0
    for index, part in enumerate(parts):
        if not await target.send(_message(part, replace=index == 0)):
            break
        sent += 1
    status = "answered" if outcome.failure is None else "failed"
    return {"status": status, "messages": sent, "uses": target.budget.used}
