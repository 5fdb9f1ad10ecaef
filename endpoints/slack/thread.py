"""A Slack thread as the chat-delivery engine's adapter (`gateway.plugin.deliver` does the rest).

- `SlackThread`: `chat.postMessage` / `chat.update` / `chat.delete` of mrkdwn section blocks
  (edits of blocks don't show "(edited)"), the assistant "is thinking…" status as the typing
  indicator, and `SlackStream` when native streaming is on.
- `SlackStream`: `chat.startStream` / `appendStream` / `stopStream` (Markdown, mentions defused);
  streams into channels name their recipient, DMs must not need to.
- `answer_rules`: how an answer looks in Slack (mrkdwn, a section's 3,000 characters, `<…>`
  tokens and entities never cut, `<think>` hidden, Slack's own notes).

Errors, after the client's own retries (`client.ClockRetryHandler`): a 429 becomes `RateLimited`;
while streaming, anything but a fatal error (token, scopes, channel) becomes `StreamUnavailable`,
so the answer goes on in edited messages as @slack/web-api does. The rest goes up to
`client.slack_failures`, which maps it to a job outcome.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import KW_ONLY, dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from endpoints.slack.client import FATAL_ERRORS, rate_limited
from endpoints.slack.render import defuse_mentions, hide_reasoning, protect_tokens, to_mrkdwn
from endpoints.slack.settings import SlackSettings
from gateway.plugin import ChatRules, GatewayError, MessageRef, StreamUnavailable, default_failure_note

__all__ = ["EMPTY_ANSWER", "SlackStream", "SlackThread", "answer_rules", "failure_note"]

EMPTY_ANSWER = "_(The app returned an empty answer.)_"


def failure_note(exc: GatewayError, partial: bool) -> str:
    """The engine's note (the failure's code, the detail goes to the log), in mrkdwn italics."""
    return f"_{default_failure_note(exc, partial)}_"


def answer_rules(settings: SlackSettings) -> ChatRules:
    """How an answer looks in a Slack message."""

    def visible(text: str, final: bool) -> str:
        return text if settings.show_reasoning else hide_reasoning(text, partial=not final)

    return ChatRules(
        limit=settings.message_limit,
        render=to_mrkdwn,
        protect=protect_tokens,
        visible=visible,
        edit_interval=settings.edit_interval,
        placeholder=settings.thinking_text,
        empty_text=EMPTY_ANSWER,
        failure_note=failure_note,
        rate_limit_attempts=1,  # the client waited out Retry-After already (`ClockRetryHandler`)
    )


@contextlib.contextmanager
def _rate_limits() -> Iterator[None]:
    try:
        yield
    except SlackApiError as exc:
        if (limited := rate_limited(exc)) is not None:
            raise limited from None
        raise


@dataclass(frozen=True, slots=True)
class SlackStream:
    """Slack's native streaming of messages in one thread; streams into channels name their
    `recipient` (team, user), DMs must not need to."""

    client: AsyncWebClient
    channel: str
    thread_ts: str
    _: KW_ONLY
    limit: int
    recipient: tuple[str, str] | None
    logger: logging.LoggerAdapter[logging.Logger]

    async def start(self, text: str) -> MessageRef:
        with self._errors():
            response = await self.client.chat_startStream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                markdown_text=defuse_mentions(text),
                recipient_team_id=None if self.recipient is None else self.recipient[0],
                recipient_user_id=None if self.recipient is None else self.recipient[1],
            )
        return str(response["ts"])

    async def append(self, ref: MessageRef, text: str) -> None:
        with self._errors():
            await self.client.chat_appendStream(channel=self.channel, ts=ref, markdown_text=defuse_mentions(text))

    async def stop(self, ref: MessageRef) -> None:
        with self._errors():
            await self.client.chat_stopStream(channel=self.channel, ts=ref)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except SlackApiError as exc:
            if (limited := rate_limited(exc)) is not None:
                raise limited from None
            error = exc.response.get("error")
            if error in FATAL_ERRORS:
                raise
            self.logger.warning("native streaming failed (%s); editing messages instead", error)
            raise StreamUnavailable(f"Slack streaming failed: {error}") from None


@dataclass(frozen=True, slots=True)
class SlackThread:
    """The messages of one answer in one Slack thread; `status` ("…thinking") is shown as the
    assistant status until the first words when `native` streaming is on."""

    client: AsyncWebClient
    channel: str
    thread_ts: str
    _: KW_ONLY
    rules: ChatRules
    native: SlackStream | None = None
    status: str | None = None
    original: MessageRef | None = None

    @staticmethod
    def _blocks(text: str) -> list[dict[str, Any]]:
        # A section block, not bare text: edits of blocks don't show "(edited)".
        return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]

    async def post(self, text: str) -> MessageRef:
        with _rate_limits():
            response = await self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=self._blocks(text)
            )
        return str(response["ts"])

    async def edit(self, ref: MessageRef, text: str) -> None:
        with _rate_limits():
            await self.client.chat_update(channel=self.channel, ts=ref, text=text, blocks=self._blocks(text))

    async def delete(self, ref: MessageRef) -> None:
        try:
            await self.client.chat_delete(channel=self.channel, ts=ref)
        except SlackApiError as exc:
            # Gone already (deleted by hand): done. Any other error goes up, or the message would
            # stay in the thread while the record forgets it.
            if exc.response.get("error") != "message_not_found":
                raise

    def typing(self) -> contextlib.AbstractAsyncContextManager[object] | None:
        return None if self.native is None or self.status is None else self._thinking(self.status)

    def writes_left(self) -> int | None:
        return None

    @contextlib.asynccontextmanager
    async def _thinking(self, status: str) -> AsyncIterator[None]:
        with contextlib.suppress(SlackApiError):  # only assistant threads have a status
            await self.client.assistant_threads_setStatus(
                channel_id=self.channel, thread_ts=self.thread_ts, status=status
            )
        yield  # Slack clears the status when the answer is posted
