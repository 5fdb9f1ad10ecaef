"""The `answer` job: one Telegram message in, one streamed answer out.

Idempotent by construction: the job's key is the update's `update_id` (Telegram's retries and
replicas share one job); the messages posted are recorded under the job's id, written fenced by
the run's lease, so a rerun after a crash edits them rather than answering twice. The delivery
(pacing, drafts, paging, rate limits, failure notes) is the gateway's chat engine, through
`chat.TelegramChat` and, in private chats, `chat.TelegramDraft`.

Commands: `/start` and `/help` answer the greeting, `/reset` forgets the speaker's conversation
here, `/ask question` (or a plain message) asks the app. A photo or document goes to the app as
a file input with its caption as the question, when the app takes files; else a note says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from endpoints.telegram.api import TelegramAPI, TelegramError
from endpoints.telegram.bot import identity
from endpoints.telegram.chat import TelegramChat, TelegramDraft, chat_rules
from endpoints.telegram.settings import TelegramSettings
from endpoints.telegram.updates import FileRef, TelegramMessage
from gateway.plugin import (
    AnswerSource,
    BadRequest,
    Context,
    JobError,
    JobInfo,
    PayloadTooLarge,
    RateLimited,
    RetryJob,
    StoredMessages,
    UnsupportedMediaType,
    deliver,
    said,
)

__all__ = ["answer_update"]

RECORD_TTL = 2 * 24 * 3600.0
TELEGRAM_FILE_LIMIT = 20 * 1024 * 1024  # the Bot API's getFile serves files up to 20 MB
RESET_DONE = "Done: your next message starts a new conversation."
ASK_SOMETHING = "Ask me something: write your question (in groups: mention me, reply to me or use /ask)."
UNKNOWN_COMMAND = "I know /ask, /reset and /start."
NO_FILES = "Sorry, this assistant can't read files. Please send your question as text."
FILE_REFUSED = "Sorry, this assistant can't read this kind of file. Please send your question as text."
FILE_TOO_LARGE = "Sorry, this file is too large for the assistant. Please send a smaller one."
NEEDS_CAPTION = "Please send the file again with your question as its caption."


def _draft_id(job_id: str) -> int:
    """A non-zero draft id of this answer, the same on every run of the job (a rerun continues it)."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:3], "big") * 64 + 1


async def _upload(
    file: FileRef, message: TelegramMessage, api: TelegramAPI, ctx: Context[TelegramSettings]
) -> list[Mapping[str, Any]] | str:
    """The file as a Dify file input, or the note that tells the user why not."""
    app = await ctx.apps.describe()
    if app.files is None or not app.files.enabled or not app.files.types:
        return NO_FILES
    limit = min(TELEGRAM_FILE_LIMIT, max((size for _, size in app.files.size_limits), default=TELEGRAM_FILE_LIMIT))
    if file.size is not None and file.size > limit:
        return FILE_TOO_LARGE
    try:
        content, _ = await api.download(file.file_id, max_bytes=limit)
    except TelegramError as exc:
        if exc.status == 413:
            return FILE_TOO_LARGE
        raise
    try:
        uploaded = await ctx.apps.upload(content, name=file.name, mime_type=file.mime_type, user=message.dify_user)
    except PayloadTooLarge:
        return FILE_TOO_LARGE
    except (UnsupportedMediaType, BadRequest) as exc:
        ctx.logger.info("the app refused a file from Telegram: %s", exc.code)
        return FILE_REFUSED
    return [uploaded.as_input()]


async def _answer(
    message: TelegramMessage, question: str, api: TelegramAPI, ctx: Context[TelegramSettings]
) -> AbstractAsyncContextManager[AnswerSource]:
    files: list[Mapping[str, Any]] = []
    if message.file is not None:
        if not question:
            return said(NEEDS_CAPTION)
        upload = await _upload(message.file, message, api, ctx)
        if isinstance(upload, str):
            return said(upload)
        files = upload
    if not question:
        return said(ASK_SOMETHING)
    return ctx.apps.stream(question, user=message.dify_user, conversation_key=message.conversation_key, files=files)


async def answer_update(job: JobInfo, ctx: Context[TelegramSettings]) -> dict[str, Any]:
    """Answer one message (a `TelegramMessage` payload) if it addresses the bot."""
    message = TelegramMessage.from_payload(job.payload)
    settings = ctx.settings
    if settings.bot_token is None:
        return {"status": "ignored", "reason": "bot_token is not set"}
    api = TelegramAPI(
        ctx.http, settings.api_base_url, settings.bot_token.get_secret_value(), clock=ctx.clock, fence=job.fence
    )
    try:
        bot = await identity(api, ctx.storage, settings.bot_token.get_secret_value())
        if not message.addressed(bot):
            return {"status": "ignored", "reason": "not addressed to the bot"}
        request = message.request(bot)
        command = request.command
        answer: AbstractAsyncContextManager[AnswerSource]
        if command == "reset":
            await ctx.apps.reset(message.conversation_key, user=message.dify_user)  # the speaker's own only
            answer = said(RESET_DONE)
        elif command in ("start", "help"):
            answer = said(settings.greeting)
        elif command == "other":
            answer = said(UNKNOWN_COMMAND)
        else:
            answer = await _answer(message, request.question, api, ctx)
        group = not message.private
        chat = TelegramChat(
            api,
            message.chat_id,
            rules=chat_rules(settings, group=group),
            clock=ctx.clock,
            thread_id=message.thread_id,
            reply_to=message.message_id if group else None,
        )
        draft = None
        if message.private and settings.drafts:
            draft = TelegramDraft(api, message.chat_id, base_id=_draft_id(job.id), thread_id=message.thread_id)
        done = await deliver(
            answer,
            chat,
            clock=ctx.clock,
            posted=StoredMessages(ctx.storage, f"out:{job.id}", ttl=RECORD_TTL, fence=job.lease),
            fence=job.fence,
            draft=draft,
        )
    except TelegramError as exc:
        if exc.status == 0 or exc.status >= 500:  # unreachable or failing: a rerun edits what was posted
            raise RetryJob(f"Telegram failed: {exc}") from None
        raise JobError(f"Telegram refused the answer: {exc}") from None
    except RateLimited as exc:
        raise JobError(f"Telegram refused the answer: still rate limited ({exc.retry_after:g} s)") from None
    if command is not None and command != "ask":
        return {"status": command if command != "other" else "unknown-command"}
    return {"status": "answered" if done.failure is None else "failed", "messages": done.messages}
