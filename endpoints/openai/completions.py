"""`POST /v1/completions`: OpenAI's legacy text completions, meant for Dify completion apps.

`prompt` (a string, or an array holding one string) is the app's text: completion and workflow
apps take it in `inputs[query_input]`, chat-family apps as the query of a new conversation (a
legacy completion has no history). `stream`, `stream_options.include_usage`, `user` and the
`inputs` extension work as on chat completions; `n`/`best_of` above 1, `echo`, `logprobs` and
`suffix` are 400s naming the parameter. Errors, before or inside a stream, have the same shapes as
on chat completions.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

from endpoints.openai.chat import Call, dify_user
from endpoints.openai.errors import OpenAIError, json_response
from endpoints.openai.keys import KeyInfo
from endpoints.openai.limits import Slot
from endpoints.openai.relay import Relay
from endpoints.openai.settings import OpenAISettings
from endpoints.openai.translate import (
    DONE,
    ChatRequest,
    ChunkWriter,
    Message,
    answer_text,
    parse_chat_request,
    sse,
    usage_dict,
)
from gateway.plugin import Context, Response

__all__ = ["complete_text", "parse_completion_request"]


def _bad(message: str, param: str) -> OpenAIError:
    return OpenAIError(400, message, param=param)


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list):
        raise _bad("only one prompt per request is supported: a Dify app gives one answer", "prompt")
    if not isinstance(value, str):
        raise _bad("prompt must be a string", "prompt")
    return value


def parse_completion_request(body: Any) -> ChatRequest:
    """A legacy completion body as a one-message chat request (400s name the parameter)."""
    if not isinstance(body, dict):
        raise OpenAIError(400, "the request body must be a JSON object")
    for name in ("n", "best_of"):
        if body.get(name) not in (None, 1):
            raise _bad(f"only {name}=1 is supported: a Dify app gives one answer", name)
    for name in ("echo", "logprobs", "suffix"):
        if body.get(name) not in (None, False):
            raise _bad(f"{name} is not supported", name)
    prompt = _prompt(body.get("prompt"))
    # The chat parser checks model, stream, stream_options, user and inputs the same way.
    chat = parse_chat_request({**body, "messages": [{"role": "user", "content": prompt}]})
    return ChatRequest(
        model=chat.model,
        messages=(Message("user", prompt),),
        stream=chat.stream,
        include_usage=chat.include_usage,
        user=chat.user,
        inputs=chat.inputs,
    )


class TextWriter(ChunkWriter):
    """`text_completion` chunks, on `ChunkWriter`'s rules for what text is sent."""

    def _body(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        if "reasoning_content" in delta:
            return b""
        self.started = True
        choice = {"text": delta.get("content", ""), "index": 0, "logprobs": None, "finish_reason": finish_reason}
        return sse(self._body([choice]))

    def _text_chunk(self, text: str) -> bytes:
        return self._chunk({"content": text})

    def finish(self, usage: dict[str, int] | None) -> list[bytes]:
        frames = [self._chunk({}, "content_filter" if self.filtered else "stop")]
        if self.include_usage:
            frames.append(sse({**self._body([]), "usage": usage}))
        frames.append(DONE)
        return frames


async def complete_text(
    ctx: Context[OpenAISettings], request: ChatRequest, key: KeyInfo, created: int, slot: Slot
) -> Response:
    """Answer a legacy completion with its model's app; `slot` is released at the end."""
    settings = ctx.settings
    user = dify_user(key.id, request.user)
    mode = ctx.apps.get(request.model).mode
    dify = await Call(request, key, user, created, settings).plan(ctx, request.model, None)
    args = dify.ask_args(user=user, conversation_key=None, app=request.model)
    completion_id = "cmpl-" + secrets.token_hex(12)
    if request.stream:
        writer = TextWriter(
            completion_id=completion_id,
            created=created,
            model=request.model,
            include_usage=request.include_usage,
            reasoning=False,
            hold=settings.workflow_output is not None and mode == "workflow",
        )
        frames = _frames(ctx, writer, dify.query, args, slot)
        await anext(frames)  # opens the Dify stream; its failures propagate with their status
        return Response.stream(frames)
    try:
        answer = await ctx.apps.ask(dify.query, **args)
    finally:
        await slot.release()
    choice = {
        "text": answer_text(answer, output_key=settings.workflow_output),
        "index": 0,
        "logprobs": None,
        "finish_reason": "content_filter" if answer.replaced else "stop",
    }
    body = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": request.model,
        "choices": [choice],
        "usage": usage_dict(answer.usage),
    }
    return json_response(body)


async def _frames(
    ctx: Context[OpenAISettings], writer: TextWriter, query: str, args: dict[str, Any], slot: Slot
) -> AsyncIterator[bytes]:
    relay = Relay(ctx, query, args, writer.feed, writer.error)
    try:
        async for frame in relay.frames():
            yield frame
        if relay.answer is None:
            return  # failed midway: the error frames went out
        settings = ctx.settings
        tail = writer.complete(answer_text(relay.answer, output_key=settings.workflow_output))
        for frame in [*tail, *writer.finish(usage_dict(relay.answer.usage))]:
            if frame:
                yield frame
    finally:
        await slot.release()
