"""`POST /v1/responses` and `GET /v1/responses/{id}`: OpenAI's Responses API against one Dify app.

Request: `input` (a string, or message items whose content is a string or `input_text` /
`output_text` / `input_image` / `input_file` parts: images and files as in `files.py`, uploaded to
the app when inline), `instructions` (a system message), `stream`, `store`
(default true), `previous_response_id`, `reasoning.summary`, `text.format` (enforced structured
output, `structured.py`), `user`, `metadata`; sampling fields are accepted and ignored like on
chat completions. Tools other than none, `background` and tool items in `input` are 400s naming
the parameter.

Continuity: `previous_response_id` continues that response's Dify conversation (the natural
mapping of Dify's `conversation_id`); without it, an input that resends a history this endpoint
answered continues it too (`threads.py`), else a new conversation starts. A stored response
(`store` true, for `THREAD_TTL`) is readable with `GET /v1/responses/{id}` by the same API key;
`store: false` keeps nothing: no stored response, no remembered history, and (unless it continues
a stored response) no remembered Dify conversation.

Streaming sends OpenAI's event sequence, each `event: <type>` + `data` with a `sequence_number`
counting from 0: `response.created`, `response.in_progress`, `response.output_item.added`,
`response.content_part.added`, `response.output_text.delta`..., `response.output_text.done`,
`response.content_part.done`, `response.output_item.done`, (a reasoning item when asked),
`response.completed`; a failure after the start is an `error` event then `response.failed`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from endpoints.openai.chat import Call, dify_user
from endpoints.openai.errors import OpenAIError, json_response
from endpoints.openai.files import Attachment, file_part, image_part
from endpoints.openai.formats import OutputFormat, text_format
from endpoints.openai.keys import KeyInfo
from endpoints.openai.limits import Slot
from endpoints.openai.relay import Relay
from endpoints.openai.settings import OpenAISettings
from endpoints.openai.structured import FALLBACK_HEADER, StructuredAnswer, ask_structured, hold
from endpoints.openai.threads import THREAD_TTL, Thread, conversation_args, find_thread, remember_thread
from endpoints.openai.translate import (
    INPUT_MODES,
    MAX_USER,
    ChatRequest,
    ChunkWriter,
    DifyCall,
    Message,
    answer_reasoning,
    answer_text,
    content_parts,
    optional,
    usage_dict,
)
from gateway.plugin import Context, Response

__all__ = ["ResponsesRequest", "create_response", "parse_responses_request", "stored_response"]

TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
ROLES = frozenset({"user", "assistant", "system", "developer"})
IGNORED_ITEMS = frozenset({"reasoning"})  # sent back by clients between turns; Dify has its own memory


def _bad(message: str, param: str | None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    chat: ChatRequest  # the input as chat messages (instructions first, as a system message)
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    reasoning: dict[str, Any] | None = None
    format: OutputFormat | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def summarize(self) -> bool:
        """Whether the client asked for reasoning summaries."""
        return bool(self.reasoning and self.reasoning.get("summary"))


def _image(part: dict[str, Any], param: str) -> Attachment:
    if part.get("image_url") is None and part.get("file_id") is not None:
        raise _bad(
            "file_id is not supported (no Files API here): send the image as image_url (an https or data: URL)",
            f"{param}.file_id",
            "unsupported_parameter",
        )
    return image_part(part.get("image_url"), f"{param}.image_url")


def _response_part(kind: Any, part: dict[str, Any], where: str) -> str | Attachment:
    if kind in TEXT_PARTS and isinstance(part.get("text"), str):
        text: str = part["text"]
        return text
    if kind == "input_image":
        return _image(part, where)
    if kind == "input_file":
        return file_part(part, where)
    if kind == "input_audio":
        raise _bad("input_audio parts are not supported here", f"{where}.type", "unsupported_content_type")
    raise _bad("content parts must be input_text, output_text, input_image or input_file", f"{where}.type")


def _input(value: Any) -> list[Message]:
    if isinstance(value, str):
        return [Message("user", value)]
    if not isinstance(value, list) or not value:
        raise _bad("input must be a string or a non-empty array of input items", "input")
    messages = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad("each input item must be an object", where)
        kind = item.get("type", "message")
        if kind in IGNORED_ITEMS:
            continue
        if kind != "message":
            raise _bad(f"input items of type {kind!r} are not supported: the Dify app runs its own tools", where)
        role = item.get("role")
        if role not in ROLES:
            raise _bad(f"role must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
        text, files = content_parts(item.get("content"), f"{where}.content", _response_part)
        messages.append(Message(role, text, files))
    if not messages or messages[-1].role != "user":
        raise _bad("the last input item must be a user message", "input")
    return messages


def _unsupported(body: Mapping[str, Any]) -> None:
    tools = body.get("tools")
    if tools not in (None, []):
        raise _bad("tools are not supported: the Dify app runs its own tools", "tools", "unsupported_parameter")
    if body.get("tool_choice") not in (None, "auto", "none"):
        raise _bad("tool_choice may only be auto or none", "tool_choice", "unsupported_parameter")
    if body.get("background"):
        raise _bad("background responses are not supported", "background", "unsupported_parameter")
    if body.get("conversation") is not None:
        raise _bad("use previous_response_id to continue a conversation", "conversation", "unsupported_parameter")
    if body.get("prompt") is not None:
        raise _bad("stored prompts are not supported", "prompt", "unsupported_parameter")


def parse_responses_request(body: Any) -> ResponsesRequest:
    """Validate a `POST /v1/responses` body (400s name the offending parameter)."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("you must provide a model parameter", "model")
    _unsupported(body)
    instructions = optional(body, "instructions", str, "a string")
    messages = _input(body.get("input"))
    if instructions:
        messages.insert(0, Message("system", instructions))
    user = optional(body, "user", str, "a string")
    if user is not None and len(user) > MAX_USER:
        raise _bad(f"user must be at most {MAX_USER} characters", "user")
    previous = optional(body, "previous_response_id", str, "a string")
    store = optional(body, "store", bool, "a boolean")
    chat = ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=bool(optional(body, "stream", bool, "a boolean")),
        user=user or None,
        inputs=optional(body, "inputs", dict, "an object") or {},
    )
    return ResponsesRequest(
        chat=chat,
        instructions=instructions,
        previous_response_id=previous,
        store=store is not False,
        reasoning=optional(body, "reasoning", dict, "an object"),
        format=text_format(body),
        metadata=optional(body, "metadata", dict, "an object") or {},
    )


# -- response objects ---------------------------------------------------------------------------------


def usage_object(usage: dict[str, int] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage["total_tokens"],
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    )
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def reasoning_item(item_id: str, summary: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id, "summary": [{"type": "summary_text", "text": summary}]}


@dataclass(slots=True)
class _Shell:
    """What every response object of one request repeats."""

    id: str
    created: int
    request: ResponsesRequest
    user: str | None

    def body(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, int] | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        req = self.request
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": error,
            "incomplete_details": None,
            "instructions": req.instructions,
            "max_output_tokens": None,
            "model": req.chat.model,
            "output": output,
            "parallel_tool_calls": False,
            "previous_response_id": req.previous_response_id,
            "reasoning": req.reasoning or {"effort": None, "summary": None},
            "store": req.store,
            "temperature": None,
            "text": {"format": req.format.as_text_format() if req.format else {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": None,
            "truncation": "disabled",
            "usage": usage_object(usage),
            "user": self.user,
            "metadata": req.metadata,
        }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps({"type": kind, **data}, ensure_ascii=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {payload}\n\n".encode("utf-8", "replace")


class EventWriter(ChunkWriter):
    """Responses API events for one streamed answer, on `ChunkWriter`'s rules for what is sent
    (moderation, New Agent duplicates, held workflow outputs, agent-thought deltas)."""

    def __init__(self, shell: _Shell, *, reasoning: bool, hold: bool = False) -> None:
        super().__init__(
            completion_id=shell.id, created=shell.created, model="", include_usage=False, reasoning=reasoning, hold=hold
        )
        self.shell = shell
        self.sequence = 0
        self.message_id = "msg_" + secrets.token_hex(16)
        self.opened = False
        self.reasoning_text = ""

    def event(self, kind: str, **data: Any) -> bytes:
        frame = _event(kind, {**data, "sequence_number": self.sequence})
        self.sequence += 1
        return frame

    def start(self) -> list[bytes]:
        created = self.shell.body("in_progress", [])
        return [self.event("response.created", response=created), self.event("response.in_progress", response=created)]

    def _open(self) -> list[bytes]:
        if self.opened:
            return []
        self.opened = True
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self.event(
                "response.output_item.added", output_index=0, item=message_item(self.message_id, "", "in_progress")
            ),
            self.event(
                "response.content_part.added", item_id=self.message_id, output_index=0, content_index=0, part=part
            ),
        ]

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        if "reasoning_content" in delta:
            self.reasoning_text += delta["reasoning_content"]
            return b""
        frames = self._open()
        frames.append(
            self.event(
                "response.output_text.delta",
                item_id=self.message_id,
                output_index=0,
                content_index=0,
                delta=delta.get("content", ""),
                logprobs=[],
            )
        )
        return b"".join(frames)

    def done(self, usage: dict[str, int] | None, reasoning: str = "") -> tuple[list[bytes], dict[str, Any]]:
        """The closing events and the completed response object."""
        frames = self._open()
        text = self.sent
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = message_item(self.message_id, text)
        frames += [
            self.event(
                "response.output_text.done",
                item_id=self.message_id,
                output_index=0,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self.event(
                "response.content_part.done", item_id=self.message_id, output_index=0, content_index=0, part=part
            ),
            self.event("response.output_item.done", output_index=0, item=item),
        ]
        output = [item]
        summary = reasoning or self.reasoning_text
        if summary:
            thought = reasoning_item("rs_" + secrets.token_hex(16), summary)
            frames += self._reasoning_events(thought, summary)
            output.append(thought)
        body = self.shell.body("incomplete" if self.filtered else "completed", output, usage)
        if self.filtered:
            body["incomplete_details"] = {"reason": "content_filter"}
        frames.append(self.event("response.incomplete" if self.filtered else "response.completed", response=body))
        return frames, body

    def _reasoning_events(self, item: dict[str, Any], summary: str) -> list[bytes]:
        ids = {"item_id": item["id"], "output_index": 1, "summary_index": 0}
        part = {"type": "summary_text", "text": summary}
        return [
            self.event("response.output_item.added", output_index=1, item={**item, "summary": []}),
            self.event("response.reasoning_summary_part.added", **ids, part={"type": "summary_text", "text": ""}),
            self.event("response.reasoning_summary_text.delta", **ids, delta=summary),
            self.event("response.reasoning_summary_text.done", **ids, text=summary),
            self.event("response.reasoning_summary_part.done", **ids, part=part),
            self.event("response.output_item.done", output_index=1, item=item),
        ]

    def failed(self, error: OpenAIError) -> list[bytes]:
        details = {"code": error.code or error.type, "message": error.message}
        return [
            self.event("error", code=error.code or error.type, message=error.message, param=error.param),
            self.event("response.failed", response=self.shell.body("failed", [], error=details)),
        ]


# -- the handler ----------------------------------------------------------------------------------------


def _slot_key(key_id: str, response_id: str) -> str:
    return f"resp:{key_id}:{response_id}"


async def stored_response(ctx: Context[OpenAISettings], key: KeyInfo, response_id: str) -> dict[str, Any]:
    """The stored record of a response of `key` (`{"response", "thread"}`); 404 otherwise."""
    raw = await ctx.storage.get(_slot_key(key.id, response_id)) if len(response_id) <= 128 else None
    if raw is None:
        raise OpenAIError(404, f"Response with id '{response_id}' not found.", param="response_id", code="not_found")
    record: dict[str, Any] = json.loads(raw)
    return record


async def _thread(
    ctx: Context[OpenAISettings], req: ResponsesRequest, key: KeyInfo, user: str, mode: str
) -> Thread | None:
    if mode in INPUT_MODES:
        return None
    if req.previous_response_id is not None:
        try:
            record = await stored_response(ctx, key, req.previous_response_id)
        except OpenAIError:
            raise OpenAIError(
                400,
                f"Previous response with id '{req.previous_response_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            ) from None
        if record.get("thread"):
            return Thread(record["thread"], new=False)
    if not req.store:
        return None
    return await find_thread(ctx.storage, req.chat, key.id, user)


@dataclass(slots=True)
class _Turn:
    ctx: Context[OpenAISettings]
    req: ResponsesRequest
    key: KeyInfo
    user: str
    app: str
    thread: Thread | None
    dify: DifyCall
    shell: _Shell

    async def keep(self, body: dict[str, Any], text: str) -> None:
        """Store the response and the history it extends (not with `store: false`)."""
        if not self.req.store:
            return
        thread = self.thread.id if self.thread else None
        record = json.dumps({"response": body, "thread": thread}, ensure_ascii=False)
        await self.ctx.storage.set(_slot_key(self.key.id, self.shell.id), record, ttl=THREAD_TTL)
        if self.thread is not None:
            await remember_thread(self.ctx.storage, self.req.chat, self.key.id, self.user, text, self.thread.id)

    def ask_args(self) -> dict[str, Any]:
        return self.dify.ask_args(user=self.user, app=self.app, **conversation_args(self.thread))


async def create_response(
    ctx: Context[OpenAISettings], req: ResponsesRequest, key: KeyInfo, created: int, slot: Slot
) -> Response:
    """Answer `req` with its model's app; `slot` (the key's in-flight slot) is released at the end."""
    settings = ctx.settings
    app, chat = req.chat.model, req.chat
    user = dify_user(key.id, chat.user)
    mode = ctx.apps.get(app).mode
    thread = await _thread(ctx, req, key, user, mode)
    call = Call(chat, key, user, created, settings)
    dify = await call.plan(ctx, app, thread)
    shell = _Shell("resp_" + secrets.token_hex(24), created, req, chat.user)
    turn = _Turn(ctx, req, key, user, app, thread, dify, shell)
    headers = [("x-conversation-id", thread.id)] if thread else []
    if req.format is not None:
        return await _structured(turn, req.format, slot, headers)
    if chat.stream:
        frames = _frames(turn, slot)
        await anext(frames)  # opens the Dify stream; its failures propagate with their status
        return Response.stream(frames, headers=headers)
    try:
        answer = await ctx.apps.ask(dify.query, **turn.ask_args())
    finally:
        await slot.release()
    text = answer_text(answer, output_key=settings.workflow_output)
    output = [message_item("msg_" + secrets.token_hex(16), text)]
    if req.summarize and (summary := answer_reasoning(answer)):
        output.insert(0, reasoning_item("rs_" + secrets.token_hex(16), summary))
    body = shell.body("completed", output, usage_dict(answer.usage))
    if answer.replaced:
        body.update(status="incomplete", incomplete_details={"reason": "content_filter"})
    await turn.keep(body, text)
    return json_response(body, headers=headers)


async def _frames(turn: _Turn, slot: Slot) -> AsyncIterator[bytes]:
    """Events of one streamed answer. The first item (b"") only marks that the Dify stream is open."""
    ctx, settings = turn.ctx, turn.ctx.settings
    mode = ctx.apps.get(turn.app).mode
    writer = EventWriter(
        turn.shell,
        reasoning=turn.req.summarize,
        hold=settings.workflow_output is not None and mode == "workflow",
    )
    relay = Relay(ctx, turn.dify.query, turn.ask_args(), writer.feed, writer.failed, writer.start)
    try:
        async for frame in relay.frames():
            yield frame
        answer = relay.answer
        if answer is None:
            return  # failed midway: the error events went out
        for frame in writer.complete(answer_text(answer, output_key=settings.workflow_output)):
            if frame:
                yield frame
        frames, body = writer.done(usage_dict(answer.usage))
        await turn.keep(body, writer.sent)  # before the last event: a client may continue at once
        for frame in frames:
            yield frame
    finally:
        await slot.release()


async def _structured(turn: _Turn, fmt: OutputFormat, slot: Slot, headers: list[tuple[str, str]]) -> Response:
    ctx = turn.ctx
    key = turn.thread.id if turn.thread else None

    async def run() -> StructuredAnswer:
        return await ask_structured(
            ctx, turn.app, turn.dify, fmt, user=turn.user, conversation_key=key, settings=ctx.settings
        )

    def finished(got: StructuredAnswer) -> dict[str, Any]:
        body = turn.shell.body("completed", [message_item("msg_" + secrets.token_hex(16), got.outcome.text)], got.usage)
        if got.outcome.fallback:
            body["structured_fallback"] = True
        return body

    if not turn.req.chat.stream:
        try:
            got = await run()
        finally:
            await slot.release()
        body = finished(got)
        await turn.keep(body, got.outcome.text)
        marks = [(FALLBACK_HEADER, "1")] if got.outcome.fallback else []
        return json_response(body, headers=headers + marks)

    writer = EventWriter(turn.shell, reasoning=False)

    async def frames(got: StructuredAnswer) -> list[bytes]:
        events = [*writer.start(), *writer.text(got.outcome.text)]
        closing, body = writer.done(got.usage)
        if got.outcome.fallback:
            body["structured_fallback"] = True
            closing[-1] = replace_last(writer, body)
        await turn.keep(body, got.outcome.text)
        return [frame for frame in [*events, *closing] if frame]

    def failed(error: OpenAIError) -> list[bytes]:
        return [*writer.start(), *writer.failed(error)]

    return await hold(run(), frames, failed, slot, headers)


def replace_last(writer: EventWriter, body: dict[str, Any]) -> bytes:
    """The `response.completed` event again (same sequence number) with an amended body."""
    writer.sequence -= 1
    return writer.event("response.completed", response=body)
