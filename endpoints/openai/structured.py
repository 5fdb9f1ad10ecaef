"""Enforced structured output against one Dify app, and chat completions that ask for it.

`ask_structured` asks the app with the format's instruction (`formats.instruct`), then runs the
gateway's one enforcement path (`gateway.plugin.enforce`: extract the JSON, validate, re-ask
once with the errors, fall back). The re-ask continues the same Dify conversation when there is
one; apps without conversations (and calls with `store: false`) get the question, the rejected
answer and the errors in one new message. Usage is the sum of both answers.

When the JSON is still invalid and the endpoint has no `structured_fallback` for the schema, the
client gets a 422 `structured_output_invalid` error naming what was wrong (422: OpenAI's SDKs do
not retry it, so a schema the app can't meet doesn't cost three more answers).

Streaming with a format sends only validated JSON: nothing goes out until the answer passed
(`hold`). The HTTP status is held for `HOLD_SECONDS`, so quick failures keep their status; a
longer wait turns into `: ping` comments, then the JSON (or an error frame).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from endpoints.openai.chat import Call
from endpoints.openai.errors import OpenAIError, from_exception, json_response
from endpoints.openai.formats import OutputFormat, fallback_for, instruct
from endpoints.openai.limits import Slot
from endpoints.openai.settings import OpenAISettings
from endpoints.openai.threads import find_thread, remember_thread
from endpoints.openai.translate import (
    INPUT_MODES,
    PING,
    ChunkWriter,
    DifyCall,
    answer_text,
    completion_body,
    sum_usage,
    usage_dict,
)
from gateway.plugin import Answer, Context, Response, Structured, enforce

__all__ = ["HOLD_SECONDS", "StructuredAnswer", "ask_structured", "complete_structured", "hold"]

HOLD_SECONDS = 5.0
HEARTBEAT_SECONDS = 10.0
FALLBACK_HEADER = "x-structured-fallback"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StructuredAnswer:
    outcome: Structured
    answer: Answer  # the last answer asked for
    usage: dict[str, int] | None  # of every answer asked for


def structured_failed(outcome: Structured) -> OpenAIError:
    detail = "; ".join(outcome.errors)
    return OpenAIError(
        422,
        f"The app's answer did not match the requested format, even after it was asked again: {detail}",
        type="server_error",
        param="response_format",
        code="structured_output_invalid",
    )


async def ask_structured(
    ctx: Context[OpenAISettings],
    app: str,
    dify: DifyCall,
    fmt: OutputFormat,
    *,
    user: str,
    conversation_key: str | None,
    settings: OpenAISettings,
) -> StructuredAnswer:
    """Ask `app` for an answer in `fmt`, enforced; `OpenAIError` 422 when it can't be had."""
    mode = ctx.apps.get(app).mode
    asked = instruct(dify, fmt, settings=settings)
    args = asked.ask_args(user=user, conversation_key=conversation_key, app=app)
    answers = [await ctx.apps.ask(asked.query, **args)]
    first = answer_text(answers[0], output_key=settings.workflow_output)

    async def reask(prompt: str) -> str:
        if conversation_key is not None and mode not in INPUT_MODES:
            again = replace(asked, files=[])  # the files are in the conversation already
            query = prompt
        else:  # no conversation to continue: everything in one message
            query = f"{asked.query}\n\nYour previous answer:\n{first}\n\n{prompt}"
            again = asked
        answers.append(
            await ctx.apps.ask(query, **again.ask_args(user=user, conversation_key=conversation_key, app=app))
        )
        return answer_text(answers[-1], output_key=settings.workflow_output)

    outcome = await enforce(first, fmt.schema, reask, fallback=fallback_for(settings, fmt))
    if not outcome.ok:
        raise structured_failed(outcome)
    if outcome.fallback:
        ctx.logger.warning("app %r answered invalid JSON twice; sent the fallback: %s", app, "; ".join(outcome.errors))
    return StructuredAnswer(outcome, answers[-1], sum_usage([usage_dict(a.usage) for a in answers]))


async def hold(
    work: Coroutine[Any, Any, T],
    frames: Callable[[T], Awaitable[list[bytes]]],
    error_frames: Callable[[OpenAIError], list[bytes]],
    slot: Slot,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    """A stream whose content waits for `work`: statuses for failures within `HOLD_SECONDS`,
    pings while waiting longer, then `frames(result)` or `error_frames(error)`."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=HOLD_SECONDS)
        if task.done():
            ready = await frames(task.result())  # raises the work's error with its own status
            await slot.release()
            return Response.stream(_items(ready), headers=headers or [])
    except BaseException:
        task.cancel()
        raise
    return Response.stream(_waiting(task, frames, error_frames, slot), headers=headers or [])


async def _items(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


async def _waiting(
    task: asyncio.Future[T],
    frames: Callable[[T], Awaitable[list[bytes]]],
    error_frames: Callable[[OpenAIError], list[bytes]],
    slot: Slot,
) -> AsyncIterator[bytes]:
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
            if not task.done():
                yield PING
        try:
            out = await frames(task.result())
        except Exception as exc:
            out = error_frames(from_exception(exc))
        for frame in out:
            yield frame
    finally:
        task.cancel()
        await slot.release()


async def complete_structured(
    ctx: Context[OpenAISettings], call: Call, app: str, slot: Slot, fmt: OutputFormat
) -> Response:
    """A chat completion whose content is JSON in `fmt` (streamed or not); `slot` released at the end."""
    request, settings = call.request, call.settings
    mode = ctx.apps.get(app).mode
    thread = None if mode in INPUT_MODES else await find_thread(ctx.storage, request, call.key.id, call.user)
    dify = await call.plan(ctx, app, thread)
    key = thread.id if thread else None
    headers = [("x-conversation-id", thread.id)] if thread else []

    async def run() -> StructuredAnswer:
        got = await ask_structured(ctx, app, dify, fmt, user=call.user, conversation_key=key, settings=settings)
        if thread is not None:
            await remember_thread(ctx.storage, request, call.key.id, call.user, got.outcome.text, thread.id)
        return got

    if not request.stream:
        try:
            got = await run()
        finally:
            await slot.release()
        body = completion_body(
            completion_id="chatcmpl-" + (got.answer.message_id or secrets.token_hex(12)),
            created=call.created,
            model=request.model,
            text=got.outcome.text,
            usage=got.usage,
            conversation_id=key,
        )
        if got.outcome.fallback:
            body["structured_fallback"] = True
            headers.append((FALLBACK_HEADER, "1"))
        return json_response(body, headers=headers)

    writer = call.writer()

    async def frames(got: StructuredAnswer) -> list[bytes]:
        return [*writer.text(got.outcome.text), *writer.finish(got.usage)]

    return await hold(run(), frames, ChunkWriter.error, slot, headers)
