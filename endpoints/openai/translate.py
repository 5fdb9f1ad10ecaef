"""Pure translation between OpenAI chat completions and Dify calls (no I/O; fully unit-tested).

Request side: `parse_chat_request` validates a `/v1/chat/completions` body (400s carry the
offending field in `param`); `plan_call` maps it onto one Dify call; `history_key` fingerprints a
message history for conversation continuity.

Response side: `completion_body` builds a `chat.completion`; `ChunkWriter` turns the gateway's
streamed `Delta`s into `chat.completion.chunk` SSE frames with OpenAI's rules (one id and
`created` on every chunk, the role in the first delta, `finish_reason` on the last, the
`include_usage` chunk with `choices: []` before `data: [DONE]`, errors as a frame then `[DONE]`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from endpoints.openai.errors import OpenAIError
from endpoints.openai.files import Attachment, file_part, image_part, web_url
from gateway.plugin import Delta

__all__ = [
    "DONE",
    "INPUT_MODES",
    "PING",
    "ChatRequest",
    "ChunkWriter",
    "DifyCall",
    "Message",
    "answer_reasoning",
    "answer_text",
    "broadcast_section",
    "completion_body",
    "content_parts",
    "file_markdown",
    "history_key",
    "model_entry",
    "optional",
    "parse_chat_request",
    "plan_call",
    "sse",
    "sum_usage",
    "transcript",
    "usage_dict",
]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
SYSTEM_ROLES = frozenset({"system", "developer"})
# Apps without Dify conversations: the text goes into an input variable.
INPUT_MODES = frozenset({"workflow", "completion"})
THREAD_ID = re.compile(r"thr_[0-9a-f]{24}")
MAX_USER = 256
DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    text: str
    files: tuple[Attachment, ...] = ()  # images and files (`files.py`)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat completion request. Sampling fields are accepted and ignored: the Dify app owns them."""

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    conversation_id: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prior(self) -> tuple[Message, ...]:
        """Everything before the last (user) message: what a continued conversation already holds."""
        return self.messages[:-1]

    @property
    def continues(self) -> bool:
        """Whether the history holds an earlier exchange (an assistant message)."""
        return any(m.role == "assistant" for m in self.prior)


@dataclass(frozen=True, slots=True)
class DifyCall:
    query: str
    inputs: dict[str, Any]
    files: list[dict[str, Any]] = field(default_factory=list)  # Dify `files`, once `attachments` are resolved
    attachments: tuple[Attachment, ...] = ()  # the last message's files (`files.dify_files` resolves them)

    def ask_args(
        self, *, user: str, conversation_key: str | None, app: str, new_conversation: bool = False
    ) -> dict[str, Any]:
        """The arguments of `ctx.apps.ask` / `ctx.apps.stream` after the query."""
        return {
            "user": user,
            "conversation_key": conversation_key,
            "new_conversation": new_conversation,
            "inputs": self.inputs,
            "files": self.files,
            "app": app,
        }


def _bad(message: str, param: str | None) -> OpenAIError:
    return OpenAIError(400, message, param=param)


def content_parts(
    content: Any, param: str, read: Callable[[Any, dict[str, Any], str], str | Attachment]
) -> tuple[str, tuple[Attachment, ...]]:
    """A message's `content` (a string or an array of parts) as its text and its files: `read(kind,
    part, where)` turns each part into text or a file, or raises the surface's 400."""
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        raise _bad("content must be a string or an array of content parts", param)
    texts: list[str] = []
    files: list[Attachment] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        read_part = read(kind, part if isinstance(part, dict) else {}, f"{param}[{j}]")
        if isinstance(read_part, str):
            texts.append(read_part)
        else:
            files.append(read_part)
    return "\n".join(texts), tuple(files)


def _chat_part(kind: Any, part: dict[str, Any], where: str) -> str | Attachment:
    if kind == "text" and isinstance(part.get("text"), str):
        text: str = part["text"]
        return text
    if kind == "image_url":
        return image_part(part.get("image_url"), f"{where}.image_url")
    if kind == "file" and isinstance(part.get("file"), dict):
        return file_part(part["file"], f"{where}.file")
    raise _bad("content parts must be text, image_url ({url}) or file ({file_data, filename})", where)


def _messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise _bad("messages must be a non-empty array", "messages")
    out = []
    for i, item in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise _bad("each message must be an object", where)
        role = item.get("role")
        if role not in ROLES:
            raise _bad(f"role must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
        if role == "user" and item.get("content") is None:
            raise _bad("a user message needs content", f"{where}.content")
        text, files = (
            ("", ()) if item.get("content") is None else content_parts(item["content"], f"{where}.content", _chat_part)
        )
        out.append(Message(role, text, files))
    if out[-1].role != "user":
        raise _bad("the last message must be a user message", "messages")
    return tuple(out)


def optional(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """`body[name]` when absent, null or of `kind` (`what` names it in the 400 otherwise)."""
    value = body.get(name)
    # bool is an int in Python: `n: true` is not a number, and `stream: 1` is not a boolean.
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)):
        raise _bad(f"{name} must be {what}", name)
    return value


def _unsupported(body: Mapping[str, Any]) -> None:
    n = optional(body, "n", int, "an integer")
    if n is not None and n != 1:
        raise _bad("only n=1 is supported: a Dify app gives one answer", "n")
    if body.get("logprobs") is True:
        raise _bad("logprobs are not supported", "logprobs")
    choice = body.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise _bad("the Dify app runs its own tools: tool_choice may only be auto or none", "tool_choice")


def _check_text(body: Any) -> None:
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _bad("the request contains invalid Unicode (a lone surrogate)", None) from None


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a chat completion body. Unknown fields and sampling settings are ignored."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", None)
    _check_text(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("you must provide a model parameter", "model")
    messages = _messages(body.get("messages"))
    _unsupported(body)
    stream = bool(optional(body, "stream", bool, "a boolean"))
    options = optional(body, "stream_options", dict, "an object") or {}
    include_usage = optional(options, "include_usage", bool, "a boolean")
    user = optional(body, "user", str, "a string")
    if user is not None and len(user) > MAX_USER:
        raise _bad(f"user must be at most {MAX_USER} characters", "user")
    conversation_id = optional(body, "conversation_id", str, "a string")
    if conversation_id is not None and not THREAD_ID.fullmatch(conversation_id):
        raise _bad("conversation_id must be a value this API returned (thr_...)", "conversation_id")
    inputs = optional(body, "inputs", dict, "an object") or {}
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=bool(include_usage) and stream,
        user=user or None,
        conversation_id=conversation_id,
        inputs=inputs,
    )


def plan_call(request: ChatRequest, *, first_turn: bool, system_input: str | None) -> DifyCall:
    """The Dify call for `request`.

    * `query` is the last user message only: earlier turns live in the Dify conversation.
    * on the first turn of a conversation (always, for apps without conversations), earlier
      messages the conversation doesn't hold (a history this endpoint never answered: an edited
      turn, few-shot examples) are sent ahead of it as a transcript (`transcript`).
    * system/developer messages go to `inputs[system_input]` when set, else they are prefixed to
      the query on the conversation's first turn (Dify remembers them afterwards).
    * a Workflow/Completion app gets the query in its input variable (`ctx.apps` puts it there).
    * the last message's images and files become `attachments`; `files.dify_files` turns them
      into Dify files (uploads need I/O, so not here).
    * the `inputs` extension field is the base of `inputs`.
    """
    last = request.messages[-1]
    parts = [last.text]
    inputs = dict(request.inputs)
    if first_turn and (earlier := transcript(request.prior)):
        parts.insert(0, earlier)
    system = "\n\n".join(m.text for m in request.messages if m.role in SYSTEM_ROLES and m.text)
    if system:
        if system_input:
            inputs[system_input] = system
        elif first_turn:
            parts.insert(0, system)
    return DifyCall("\n\n".join(parts), inputs, attachments=last.files)


_SPEAKERS = {"user": "User", "assistant": "Assistant", "tool": "Tool", "function": "Tool"}


def transcript(messages: Sequence[Message]) -> str:
    """Earlier turns as context for a new conversation: one `Speaker: text` line per message
    (system messages are sent on their own), inside `<history>` tags; "" when there are none.

        <history>
        User: What is 2+2?
        Assistant: 4
        </history>
    """
    lines = []
    for message in messages:
        speaker = _SPEAKERS.get(message.role)
        if speaker is None:
            continue
        text = " ".join([message.text, *(file.label for file in message.files)]).strip()
        if text:
            lines.append(f"{speaker}: {text}")
    return "<history>\n" + "\n".join(lines) + "\n</history>" if lines else ""


def history_key(key_id: str, user: str, model: str, messages: Sequence[Message]) -> str:
    """A fingerprint of a history, scoped to one API key, user and model.

    Texts are compared stripped (clients often trim the answer they resend); files by URL
    (inline ones by a digest of their data).
    """
    canonical = [key_id, user, model, [[m.role, m.text.strip(), [f.key for f in m.files]] for m in messages]]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode("utf-8", "replace")).hexdigest()


# -- responses --------------------------------------------------------------------------------------


def usage_dict(usage: Any) -> dict[str, int] | None:
    """OpenAI usage from Dify's; None unless Dify reported all three counts (never invented)."""
    counts: dict[str, int] = {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(usage, name, None)
        if not isinstance(value, int):
            return None
        counts[name] = value
    return counts


def sum_usage(usages: Sequence[dict[str, int] | None]) -> dict[str, int] | None:
    """The sum of several answers' usage; None when any of them is unknown."""
    if not usages or any(u is None for u in usages):
        return None
    return {name: sum(u[name] for u in usages if u) for name in ("prompt_tokens", "completion_tokens", "total_tokens")}


def file_markdown(url: str, kind: str | None) -> str | None:
    """A Markdown image or link for a Dify file, or None for a URL that isn't http(s) (untrusted payload)."""
    if not web_url(url):
        return None
    return f"![image]({url})" if kind == "image" else f"[file]({url})"


def answer_text(answer: Any, *, output_key: str | None = None) -> str:
    """An answer's text: a workflow's `outputs[output_key]` when set, plus Markdown for its files."""
    text: str = answer.text
    outputs = answer.outputs or {}
    if output_key and isinstance(outputs.get(output_key), str):
        text = outputs[output_key]
    links = [md for f in answer.files if (md := file_markdown(f.url or "", f.type))]
    return "\n\n".join([text, *links]) if links else text


def answer_reasoning(answer: Any) -> str:
    """Reasoning chunks and agent thoughts of an answer, as one text."""
    parts = [answer.reasoning] if answer.reasoning else []
    parts += [t.thought for t in answer.thoughts if t.thought]
    return "\n".join(parts)


def broadcast_section(app: str, text: str | None, *, first: bool) -> str:
    """One app's part of a broadcast answer; `text` None marks an app that failed."""
    body = text if text is not None else "_(no answer: the app failed)_"
    return ("" if first else "\n\n") + f"### {app}\n\n{body}"


def completion_body(
    *,
    completion_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str = "stop",
    usage: dict[str, int] | None = None,
    reasoning: str | None = None,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """A `chat.completion` object; `conversation_id` is our extension (send it back to continue)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }
    if conversation_id:
        body["conversation_id"] = conversation_id
    return body


def model_entry(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "dify"}


def sse(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace") + b"\n\n"


class ChunkWriter:
    """Turns streamed deltas into `chat.completion.chunk` frames for one completion.

    Rules beyond the plain ones: `message_replace` (output moderation) after text went out can't
    retract it, so the rest of the answer is dropped and the stream ends with
    `finish_reason: "content_filter"`; before any text it is emitted as content. Other replaces
    (a New Agent's differing final message) are ignored once text went out. Reasoning chunks and
    agent thoughts become `delta.reasoning_content` only with `reasoning=True`.

    With `hold=True` (a workflow whose answer is a chosen output, which may differ from the text
    it streams, or an app with output moderation, whose answer may be replaced at its end) no
    answer text goes out until `complete` gives the final text, sent whole: the streamed answer
    is then exactly the non-streamed one, and a moderated answer ends with `content_filter`.
    """

    def __init__(
        self, *, completion_id: str, created: int, model: str, include_usage: bool, reasoning: bool, hold: bool = False
    ) -> None:
        self.id = completion_id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self.reasoning = reasoning
        self.hold = hold
        self.started = False
        self.sent = ""
        self.filtered = False  # text went out before a message_replace: the rest is dropped
        self.moderated = False  # a held answer was replaced by moderation
        self._thoughts: dict[str, str] = {}
        self._content: tuple[bytes, bytes] | None = None  # see `_text_chunk`

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        if not self.started:
            self.started = True
            delta = {"role": "assistant", **delta}
        return self._render(delta, finish_reason)

    def _render(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return sse(chunk)

    def text(self, text: str) -> list[bytes]:
        """Content frames for `text` (nothing for empty text or after a content filter)."""
        if not text or self.filtered:
            return []
        self.sent += text
        return [self._text_chunk(text)]

    def _text_chunk(self, text: str) -> bytes:
        """`_chunk({"content": text})`. After the first chunk (the one with the role), the bytes
        around the text's JSON are the same every time: rendered once, not per token. The
        marker can't occur inside a JSON string (its quotes would be escaped), only where the
        text goes."""
        if not self.started:
            return self._chunk({"content": text})
        if self._content is None:
            before, _, after = self._render({"content": ""}, None).partition(b'"content":""')
            self._content = (before + b'"content":', after)
        return self._content[0] + json.dumps(text, ensure_ascii=False).encode("utf-8", "replace") + self._content[1]

    def feed(self, delta: Delta) -> list[bytes]:
        """The frames for one delta of the gateway's answer stream."""
        kind, event = delta.kind, delta.event
        if kind == "ping":
            return [PING]
        if self.hold and kind in ("text", "replace", "file"):
            if getattr(event, "event", None) == "message_replace":
                self.moderated = True
            return []  # the answer goes out whole, in `complete`
        if kind == "text":
            return self.text(delta.text)
        if kind == "replace":
            if not self.sent:
                return self.text(delta.text)
            if getattr(event, "event", None) == "message_replace":
                self.filtered = True
            return []
        if kind == "file":
            md = file_markdown(delta.text, getattr(event, "type", None))
            return self.text(("\n\n" if self.sent else "") + md) if md else []
        if kind in ("reasoning", "thought") and self.reasoning and not self.filtered:
            return self._reasoning(delta)
        return []  # progress; reasoning when hidden

    def _reasoning(self, delta: Delta) -> list[bytes]:
        text = delta.text
        if delta.kind == "thought":
            # Dify repeats an agent thought as it grows (same id): send only what is new.
            key = str(getattr(delta.event, "id", None) or getattr(delta.event, "position", ""))
            before = self._thoughts.get(key, "")
            if not text.startswith(before):
                return []
            self._thoughts[key] = text
            text = text[len(before) :]
        return [self._chunk({"reasoning_content": text})] if text else []

    def complete(self, final: str) -> list[bytes]:
        """Frames for the part of the final text not streamed yet (all of it when held)."""
        if final.startswith(self.sent):
            return self.text(final[len(self.sent) :])
        return []

    def finish(self, usage: dict[str, int] | None) -> list[bytes]:
        """The closing chunk, the usage chunk when asked for, and `[DONE]`."""
        frames = [] if self.started else [self._chunk({"content": ""})]
        frames.append(self._chunk({}, "content_filter" if self.filtered or self.moderated else "stop"))
        if self.include_usage:
            frames.append(
                sse(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        frames.append(DONE)
        return frames

    @staticmethod
    def error(error: OpenAIError) -> list[bytes]:
        """After the stream started: an error frame (the SDKs raise on it), then `[DONE]`."""
        return [sse(error.body()), DONE]
