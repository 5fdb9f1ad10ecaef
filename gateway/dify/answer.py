"""Assemble an `Answer` from typed events, producing `Delta`s on the way (pure, no I/O).

Per mode (dify-api.md §1, §4):
* chat, advanced-chat, completion: `message` chunks append.
* agent-chat: `agent_message` chunks append; `agent_thought` becomes a `thought` delta.
* agent (New Agent): `agent_message` chunks append, and the closing `message` carries the full
  answer: it becomes the final text (a suffix delta if it extends what was shown, a `replace`
  delta if it differs, nothing if equal). It is never appended.
* workflow: `text_chunk` deltas append; `workflow_finished.data.outputs` are kept, and the text
  falls back to `outputs[app.output_key]` (or the single string output) when it differs.
* `message_replace` replaces the text (`replace` delta).

Terminators (§4.3): `message_end`, `workflow_finished`, `workflow_paused`. `error` raises
`DifyStreamError`; `workflow_finished` failed/stopped raises `WorkflowFailed`.
"""

from __future__ import annotations

import functools
from typing import Any

from gateway.dify.errors import AnswerTooLarge, DifyStreamError, WorkflowFailed, classify
from gateway.dify.events import (
    AgentMessageEvent,
    AgentThoughtEvent,
    DifyEvent,
    ErrorEvent,
    HumanInputRequiredEvent,
    MessageEndEvent,
    MessageEvent,
    MessageFileEvent,
    MessageReplaceEvent,
    NodeFinishedEvent,
    NodeStartedEvent,
    PingEvent,
    ReasoningChunkEvent,
    TextChunkEvent,
    Usage,
    WorkflowFinishedEvent,
    WorkflowPausedEvent,
)
from gateway.dify.models import Answer, Delta, DifyApp

__all__ = ["AnswerBuilder"]

_PING_DELTA = Delta("ping")
_FAILED = frozenset({"failed", "stopped"})
_IDS = ("task_id", "conversation_id", "message_id", "workflow_run_id")


@functools.cache
def _ids_of(kind: type[DifyEvent]) -> tuple[str, ...]:
    """The ids events of `kind` carry. Asking a pydantic model for a field it lacks raises (and
    catches) an AttributeError inside: per event, for every id it never has, that adds up."""
    return tuple(name for name in _IDS if name in kind.model_fields)


class AnswerBuilder:
    """Feed events in order with `feed`; read `answer()` at any time.

    Args:
        app: the app answering (its mode and `output_key` drive the rules above).
        max_chars: cap on text + reasoning; beyond it `feed` raises `AnswerTooLarge`.
    """

    def __init__(self, app: DifyApp, *, max_chars: int = 1 << 20) -> None:
        self._app = app
        self._max = max_chars
        self._chunks: list[str] = []
        self._size = 0
        self._reasoning: list[str] = []
        self._reasoning_size = 0
        self._thoughts: dict[str, AgentThoughtEvent] = {}
        self._files: list[MessageFileEvent] = []
        self.conversation_id: str | None = None
        self.message_id: str | None = None
        self.task_id: str | None = None
        self.workflow_run_id: str | None = None
        self._usage: Usage | None = None
        self._outputs: dict[str, Any] | None = None
        self._replaced = False
        self._replace_reason: str | None = None
        self._resources: tuple[dict[str, Any], ...] = ()
        self._paused = False
        self._human_input: HumanInputRequiredEvent | None = None
        self._last_node_error: str | None = None
        self.terminated = False
        self.final = False
        self.conversation_reset = False

    # --- reading -------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        if len(self._chunks) > 1:
            self._chunks = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    def answer(self, *, complete: bool | None = None) -> Answer:
        """Snapshot of what arrived; `complete` defaults to "a terminator was seen"."""
        return Answer(
            text=self.text,
            app=self._app.name,
            mode=self._app.mode,
            complete=self.terminated if complete is None else complete,
            conversation_id=self.conversation_id,
            message_id=self.message_id,
            task_id=self.task_id,
            workflow_run_id=self.workflow_run_id,
            usage=self._usage,
            outputs=self._outputs,
            replaced=self._replaced,
            replace_reason=self._replace_reason,
            reasoning="".join(self._reasoning),
            thoughts=tuple(self._thoughts.values()),
            files=tuple(self._files),
            retriever_resources=self._resources,
            paused=self._paused,
            human_input=self._human_input,
            conversation_reset=self.conversation_reset,
        )

    # --- writing -------------------------------------------------------------------------------

    def feed(self, event: DifyEvent) -> list[Delta]:
        """Apply one event; return the deltas it produces (often none or one)."""
        self.remember_ids(event)
        if isinstance(event, MessageEvent | AgentMessageEvent):
            if isinstance(event, MessageEvent) and self._app.mode == "agent":
                return self._set_final_text(event.answer, event)
            return self._append(event.answer, event)
        if isinstance(event, TextChunkEvent):
            return self._append(event.data.text, event)
        if isinstance(event, PingEvent):
            return [_PING_DELTA]
        if isinstance(event, MessageEndEvent):
            return self._message_end(event)
        if isinstance(event, WorkflowFinishedEvent):
            return self._workflow_finished(event)
        if isinstance(event, ErrorEvent):
            error = classify(event.status, event.code, event.message, app=self._app.name)
            raise DifyStreamError(
                error.message,
                upstream_status=event.status,
                upstream_code=event.code,
                partial=self.answer(complete=False),
                app=self._app.name,
            )
        return self._other(event)

    def _other(self, event: DifyEvent) -> list[Delta]:
        if isinstance(event, MessageReplaceEvent):
            self._chunks = [event.answer]
            self._size = len(event.answer)
            self._replaced = True
            self._replace_reason = event.reason
            self._check_size()
            return [Delta("replace", event.answer, event)]
        if isinstance(event, ReasoningChunkEvent):
            self._reasoning.append(event.data.reasoning)
            self._reasoning_size += len(event.data.reasoning)
            self._check_size()
            return [Delta("reasoning", event.data.reasoning, event)] if event.data.reasoning else []
        if isinstance(event, AgentThoughtEvent):
            key = event.id or f"#{event.position}"
            self._thoughts[key] = event
            return [Delta("thought", event.thought or "", event)]
        if isinstance(event, MessageFileEvent):
            self._files.append(event)
            return [Delta("file", event.url or "", event)]
        if isinstance(event, NodeStartedEvent):
            return [Delta("progress", event.data.title or event.data.node_type or "", event)]
        if isinstance(event, NodeFinishedEvent):
            if event.data.status == "failed":
                self._last_node_error = event.data.error  # informational unless the run fails
            return []
        if isinstance(event, HumanInputRequiredEvent):
            self._human_input = event
            return []
        if isinstance(event, WorkflowPausedEvent):
            self._paused = self.terminated = self.final = True
            return []
        return []  # progress, TTS, unknown and malformed events change nothing

    def remember_ids(self, event: DifyEvent) -> None:
        """Note task/conversation/message/run ids from `event` without applying it."""
        # Save ids as soon as they appear (dify-api.md §2.4, §7), not only at the end.
        for name in _ids_of(type(event)):
            if getattr(self, name) is None:
                setattr(self, name, getattr(event, name))

    def _append(self, text: str, event: DifyEvent) -> list[Delta]:
        if not text:
            return []
        self._chunks.append(text)
        self._size += len(text)
        self._check_size()
        return [Delta("text", text, event)]

    def _set_final_text(self, full: str, event: DifyEvent) -> list[Delta]:
        current = self.text
        if full == current:
            return []
        self._chunks = [full]
        self._size = len(full)
        self._check_size()
        if full.startswith(current):
            return [Delta("text", full[len(current) :], event)]
        return [Delta("replace", full, event)]

    def _message_end(self, event: MessageEndEvent) -> list[Delta]:
        if event.metadata.usage is not None:
            self._usage = event.metadata.usage
        self._resources = tuple(event.metadata.retriever_resources)
        self.message_id = self.message_id or event.id
        self.terminated = True
        # A Chatflow still sends workflow_finished after message_end: keep reading for it.
        self.final = self._app.mode != "advanced-chat"
        return []

    def _workflow_finished(self, event: WorkflowFinishedEvent) -> list[Delta]:
        data = event.data
        if data.status in _FAILED:
            reason = data.error or self._last_node_error or f"status {data.status}"
            raise WorkflowFailed(
                f"the Dify workflow of app '{self._app.name}' {data.status}: {reason}",
                upstream_code=f"workflow_{data.status}",
                partial=self.answer(complete=False),
                app=self._app.name,
            )
        self._outputs = data.outputs
        if self._usage is None and data.total_tokens is not None:
            self._usage = Usage(total_tokens=data.total_tokens)
        self.terminated = self.final = True
        if self._app.mode == "workflow":
            chosen = self._pick_output(data.outputs or {})
            if chosen is not None:
                return self._set_final_text(chosen, event)
        return []

    def _pick_output(self, outputs: dict[str, Any]) -> str | None:
        key = self._app.output_key
        if key is not None:
            value = outputs.get(key)
            return value if isinstance(value, str) else None
        if self._size:
            return None  # text_chunk already delivered the answer
        strings = [value for value in outputs.values() if isinstance(value, str)]
        return strings[0] if len(strings) == 1 else None

    def _check_size(self) -> None:
        if self._size + self._reasoning_size > self._max:
            raise AnswerTooLarge(
                f"the answer from Dify app '{self._app.name}' exceeded {self._max} characters",
                partial=self.answer(complete=False),
                app=self._app.name,
            )
