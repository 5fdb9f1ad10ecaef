"""`POST /v1/chat/completions` against one Dify app, streaming or not.

Dify is always called in streaming mode (the gateway's `ctx.apps`). For `stream: true` the Dify
stream is opened in the request handler, before the response starts, so failures up to Dify's
first event still get a real HTTP status (401/404/429/502/504); after that, an error is a frame
followed by `[DONE]`. The frames are produced straight from the request (no job): when the
client disconnects, the server cancels or closes the generator, which leaves the
`ctx.apps.stream` block early, and the gateway then calls Dify's stop endpoint with the same user.

A workflow app with the `workflow_output` setting answers with that output, which may differ from
the text the workflow streams: its streamed answer is held and sent whole when the workflow
finishes (`: ping` comments meanwhile), so both modes give the same text. So is the answer of an
app with output moderation (`sensitive_word_avoidance`): Dify may replace it at the end
(`message_replace`), and text a client already has can't be taken back.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from endpoints.openai.errors import from_exception, json_response
from endpoints.openai.files import dify_files
from endpoints.openai.keys import KeyInfo
from endpoints.openai.limits import Slot
from endpoints.openai.settings import OpenAISettings
from endpoints.openai.threads import Thread, conversation_args, find_thread, remember_thread
from endpoints.openai.translate import (
    INPUT_MODES,
    PING,
    ChatRequest,
    ChunkWriter,
    DifyCall,
    answer_reasoning,
    answer_text,
    completion_body,
    plan_call,
    usage_dict,
)
from gateway.plugin import Context, Response, UpstreamError

__all__ = ["Call", "complete", "dify_user"]


def dify_user(key_id: str, user: str | None) -> str:
    """The Dify `user`: the client's `user`, namespaced by API key (one key never sees another's conversations)."""
    return f"openai:{key_id}:{user or 'default'}"


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated, validated chat completion request."""

    request: ChatRequest
    key: KeyInfo
    user: str  # the Dify user
    created: int
    settings: OpenAISettings

    def writer(self, *, reasoning: bool = False, hold: bool = False) -> ChunkWriter:
        """A chunk writer for this completion's stream (a new id, the request's model and usage choice)."""
        return ChunkWriter(
            completion_id="chatcmpl-" + secrets.token_hex(12),
            created=self.created,
            model=self.request.model,
            include_usage=self.request.include_usage,
            reasoning=reasoning,
            hold=hold,
        )

    async def plan(self, ctx: Context[OpenAISettings], app: str, thread: Thread | None) -> DifyCall:
        """The Dify call to `app`, with the last message's files uploaded to it (or checked, for URLs)."""
        call = plan_call(self.request, first_turn=thread is None or thread.new, system_input=self.settings.system_input)
        files = await dify_files(ctx, app, call.attachments, user=self.user, settings=self.settings)
        return dataclasses.replace(call, files=files)


def _thread_headers(thread: Thread | None) -> list[tuple[str, str]]:
    return [("x-conversation-id", thread.id)] if thread else []


async def complete(ctx: Context[OpenAISettings], call: Call, app: str, slot: Slot) -> Response:
    """Answer `call` with `app`; `slot` (the key's in-flight slot) is released when the answer ends."""
    request, settings = call.request, call.settings
    info = await ctx.apps.describe(app)
    # Workflow and completion apps have no conversations: nothing to continue.
    thread = None if info.mode in INPUT_MODES else await find_thread(ctx.storage, request, call.key.id, call.user)
    dify = await call.plan(ctx, app, thread)
    if request.stream:
        # A chosen workflow output may differ from the streamed text, and a moderated answer may
        # be replaced at its end: either is sent whole.
        hold = (settings.workflow_output is not None and info.mode == "workflow") or info.output_moderation
        frames = _frames(ctx, call, app, dify, thread, slot, hold=hold)
        await anext(frames)  # opens the Dify stream; its failures propagate with their status
        return Response.stream(frames, headers=_thread_headers(thread))
    try:
        answer = await ctx.apps.ask(dify.query, **dify.ask_args(user=call.user, app=app, **conversation_args(thread)))
    finally:
        await slot.release()
    text = answer_text(answer, output_key=settings.workflow_output)
    if thread is not None:
        await remember_thread(ctx.storage, request, call.key.id, call.user, text, thread.id)
    body = completion_body(
        completion_id="chatcmpl-" + (answer.message_id or answer.workflow_run_id or secrets.token_hex(12)),
        created=call.created,
        model=request.model,
        text=text,
        finish_reason="content_filter" if answer.replaced else "stop",
        usage=usage_dict(answer.usage),
        reasoning=answer_reasoning(answer) if settings.reasoning else None,
        conversation_id=thread.id if thread else None,
    )
    return json_response(body, headers=_thread_headers(thread))


async def _frames(
    ctx: Context[OpenAISettings], call: Call, app: str, dify: DifyCall, thread: Thread | None, slot: Slot, *, hold: bool
) -> AsyncIterator[bytes]:
    """SSE frames of one answer. The first item (b"") only marks that the Dify stream is open."""
    request, settings = call.request, call.settings
    writer = call.writer(
        reasoning=settings.reasoning,
        hold=hold,
    )
    try:
        async with ctx.apps.stream(
            dify.query, **dify.ask_args(user=call.user, app=app, **conversation_args(thread))
        ) as stream:
            yield b""
            # Frames of events that arrived together go out in one write (one `send` instead of
            # one per token); the bytes are the same. Nothing waits for an event not yet there,
            # and until the answer's first frame went out (pings aside) each goes out at once.
            batch: list[bytes] = []
            opening = True
            try:
                async for delta in stream:
                    batch += writer.feed(delta)
                    if batch and (opening or not stream.ready):
                        opening = opening and batch == [PING]
                        yield b"".join(batch)
                        batch.clear()
            except UpstreamError as exc:
                ctx.logger.warning("Dify app %r failed mid-answer: %s", app, exc.message)
                yield b"".join([*batch, *writer.error(from_exception(exc))])
                return
            if batch:
                yield b"".join(batch)
            answer = stream.answer
        tail = writer.complete(answer_text(answer, output_key=settings.workflow_output))
        if thread is not None:
            # Stored before [DONE]: a client may send its next turn the moment the stream ends.
            await remember_thread(ctx.storage, request, call.key.id, call.user, writer.sent, thread.id)
        yield b"".join([*tail, *writer.finish(usage_dict(answer.usage))])
    finally:
        await slot.release()
