"""The broadcast model: one question to several bound apps in parallel, every answer labelled.

The answer is one assistant message with a `### {app}` section per app, in the configured order
(`broadcast_apps`, default every bound app), limited to the apps the API key may use (a key
limited to some models never reaches the others through the broadcast; with none left, the
broadcast model is unknown to that key); an app that failed gets a short note instead of text.
Usage is the sum of the apps' usage, or null when any app's is unknown. A `broadcast_model`
named like a bound app is off (`broadcast_model`): a request for that name always goes to the app.

Streaming sends each section whole, in that same order, as soon as its app (and every app
before it) has finished, with `: ping` comments while waiting: the streamed text equals the
non-streamed one, and the HTTP status is held until some app has answered, so a broadcast where
every app failed still gets a real error status. Each app continues its own Dify conversation
under the broadcast's thread; a client that leaves stops every app still answering.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import anyio

from endpoints.openai.chat import Call
from endpoints.openai.errors import OpenAIError, from_exception, json_response, model_not_found
from endpoints.openai.keys import KeyInfo
from endpoints.openai.limits import Slot
from endpoints.openai.settings import OpenAISettings
from endpoints.openai.threads import Thread, conversation_args, find_thread, remember_thread
from endpoints.openai.translate import (
    INPUT_MODES,
    PING,
    answer_text,
    broadcast_section,
    completion_body,
    sum_usage,
    usage_dict,
)
from gateway.plugin import Context, Response, UpstreamError

__all__ = ["broadcast_apps", "broadcast_completion", "broadcast_model"]

HEARTBEAT_SECONDS = 10.0


def broadcast_model(settings: OpenAISettings, bound: Sequence[str]) -> str | None:
    """The broadcast model's name; None when unset or when it names a bound app (the app wins)."""
    name = settings.broadcast_model
    return name if name and name not in bound else None


def broadcast_apps(settings: OpenAISettings, bound: Sequence[str], key: KeyInfo) -> list[str]:
    """The apps a broadcast by `key` asks: the configured ones (default: every bound app) that
    are bound and that the key may use, in the configured order."""
    return [name for name in (settings.broadcast_apps or bound) if name in bound and key.allows(name)]


@dataclass(frozen=True, slots=True)
class _Result:
    app: str
    text: str | None
    usage: dict[str, int] | None
    error: OpenAIError | None


async def _ask(ctx: Context[OpenAISettings], call: Call, app: str, thread: Thread) -> _Result:
    mode = ctx.apps.get(app).mode
    chat = mode not in INPUT_MODES
    try:
        dify = await call.plan(ctx, app, thread if chat else None)
    except OpenAIError as exc:  # the app can't take the request's files: the others may
        return _Result(app, None, None, exc)
    try:
        answer = await ctx.apps.ask(
            dify.query,
            **dify.ask_args(user=call.user, app=app, **conversation_args(thread if chat else None)),
        )
    except UpstreamError as exc:
        ctx.logger.warning("Dify app %r failed in a broadcast: %s", app, exc.message)
        return _Result(app, None, None, from_exception(exc))
    return _Result(app, answer_text(answer, output_key=call.settings.workflow_output), usage_dict(answer.usage), None)


async def _cancel(tasks: list[asyncio.Task[_Result]]) -> None:
    """Cancel unfinished answers (their Dify tasks get stopped) and wait for them to wind down."""
    for task in tasks:
        task.cancel()
    with anyio.CancelScope(shield=True):
        await asyncio.gather(*tasks, return_exceptions=True)


def _first_error(tasks: list[asyncio.Task[_Result]]) -> OpenAIError:
    errors = [error for task in tasks if (error := task.result().error) is not None]
    return errors[0]


async def broadcast_completion(ctx: Context[OpenAISettings], call: Call, slot: Slot) -> Response:
    """Answer `call` (whose model is the broadcast model) with every broadcast app."""
    settings, request = call.settings, call.request
    apps = broadcast_apps(settings, ctx.apps.names, call.key)
    if not apps:
        raise model_not_found(request.model)
    thread = await find_thread(ctx.storage, request, call.key.id, call.user)
    tasks = [asyncio.create_task(_ask(ctx, call, app, thread)) for app in apps]
    try:
        if request.stream:
            pending: set[asyncio.Task[_Result]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(task.result().error is None for task in done):
                    break
            else:
                raise _first_error(tasks)
            return Response.stream(
                _frames(ctx, call, apps, tasks, thread, slot), headers=[("x-conversation-id", thread.id)]
            )
        await asyncio.wait(tasks)
    except BaseException:
        await _cancel(tasks)
        raise
    await slot.release()
    results = [task.result() for task in tasks]
    if all(result.error is not None for result in results):
        raise _first_error(tasks)
    text = "".join(broadcast_section(r.app, r.text, first=i == 0) for i, r in enumerate(results))
    await remember_thread(ctx.storage, request, call.key.id, call.user, text, thread.id)
    body = completion_body(
        completion_id="chatcmpl-" + secrets.token_hex(12),
        created=call.created,
        model=request.model,
        text=text,
        usage=sum_usage([r.usage for r in results]),
        conversation_id=thread.id,
    )
    return json_response(body, headers=[("x-conversation-id", thread.id)])


async def _frames(
    ctx: Context[OpenAISettings],
    call: Call,
    apps: list[str],
    tasks: list[asyncio.Task[_Result]],
    thread: Thread,
    slot: Slot,
) -> AsyncIterator[bytes]:
    request = call.request
    writer = call.writer()
    try:
        results = []
        for i, (app, task) in enumerate(zip(apps, tasks, strict=True)):
            while not task.done():
                done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
                if not done:
                    yield PING
            result = task.result()
            results.append(result)
            for frame in writer.text(broadcast_section(app, result.text, first=i == 0)):
                yield frame
        await remember_thread(ctx.storage, request, call.key.id, call.user, writer.sent, thread.id)
        for frame in writer.finish(sum_usage([r.usage for r in results])):
            yield frame
    finally:
        await _cancel(tasks)
        await slot.release()
