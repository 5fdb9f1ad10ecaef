"""What the simulator says, as a list of steps (pure): events in Dify's exact shapes, and waits.

`plan(...)` returns `Step`s; `app.py` plays them (sleeping, pinging, honouring stops). Keeping
the script pure makes the event shapes easy to read and to test.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MODERATED_ANSWER", "Ids", "Step", "encode", "plan", "stopped_tail", "tokenize", "usage"]

PING = b"event: ping\n\n"
MODERATED_ANSWER = "[simulator] this answer was moderated"  # what output moderation replaces an answer with
_TOKEN = re.compile(r"\s*\S+|\s+$")


def tokenize(text: str) -> list[str]:
    """Word-ish tokens that concatenate back to `text` ("You", " said:", " hi")."""
    return _TOKEN.findall(text) or ([text] if text else [])


def encode(payload: dict[str, Any]) -> bytes:
    """One SSE block as Dify writes it (`json.dumps` default separators, non-ASCII kept)."""
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


@dataclass(frozen=True, slots=True)
class Step:
    kind: Literal["event", "raw", "wait", "stall"]
    payload: dict[str, Any] = field(default_factory=dict)
    raw: bytes = b""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Ids:
    task_id: str
    message_id: str
    conversation_id: str | None
    workflow_run_id: str
    created_at: int

    @classmethod
    def new(cls, conversation_id: str | None, created_at: int) -> Ids:
        return cls(str(uuid.uuid4()), str(uuid.uuid4()), conversation_id, str(uuid.uuid4()), created_at)


def usage(prompt_tokens: int, completion_tokens: int, latency: float) -> dict[str, Any]:
    """A `Usage` object with real-looking prices (decimal strings, like Dify)."""
    prompt_price = prompt_tokens * 0.0015 / 1000
    completion_price = completion_tokens * 0.002 / 1000
    return {
        "prompt_tokens": prompt_tokens,
        "prompt_unit_price": "0.0015",
        "prompt_price_unit": "0.001",
        "prompt_price": f"{prompt_price:.7f}",
        "completion_tokens": completion_tokens,
        "completion_unit_price": "0.002",
        "completion_price_unit": "0.001",
        "completion_price": f"{completion_price:.7f}",
        "total_tokens": prompt_tokens + completion_tokens,
        "total_price": f"{prompt_price + completion_price:.7f}",
        "currency": "USD",
        "latency": round(latency, 3),
    }


class _Script:
    def __init__(self, mode: str, ids: Ids, tokens: list[str], usage_: dict[str, Any], first: float, gap: float):
        self.mode, self.ids, self.tokens, self.usage = mode, ids, tokens, usage_
        self.first, self.gap = first, gap
        self.steps: list[Step] = []

    def chat(self, name: str, **fields: Any) -> None:
        ids = self.ids
        head = {
            "event": name,
            "conversation_id": ids.conversation_id,
            "message_id": ids.message_id,
            "created_at": ids.created_at,
            "task_id": ids.task_id,
        }
        self.steps.append(Step("event", {**head, **fields}))

    def flow(self, name: str, data: dict[str, Any]) -> None:
        ids = self.ids
        self.steps.append(
            Step("event", {"event": name, "task_id": ids.task_id, "workflow_run_id": ids.workflow_run_id, "data": data})
        )

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            self.steps.append(Step("wait", seconds=seconds))

    def tokens_out(self, tokens: list[str]) -> None:
        for index, token in enumerate(tokens):
            self.wait(self.first if index == 0 else self.gap)
            if self.mode == "workflow":
                self.flow("text_chunk", {"text": token, "from_variable_selector": ["llm", "text"]})
            elif self.mode in ("agent-chat", "agent"):
                self.chat("agent_message", id=self.ids.message_id, answer=token)
            else:
                self.chat("message", id=self.ids.message_id, answer=token, from_variable_selector=None)

    def node(self, name: str, status: str | None = None, error: str | None = None) -> None:
        data: dict[str, Any] = {
            "id": self.ids.workflow_run_id[:8] + "-llm",
            "node_id": "llm",
            "node_type": "llm",
            "title": "LLM",
            "index": 1,
            "predecessor_node_id": "start",
            "inputs": {},
            "created_at": self.ids.created_at,
            "iteration_id": None,
            "loop_id": None,
        }
        if status is not None:
            data.update(
                status=status,
                error=error,
                outputs={},
                elapsed_time=0.1,
                process_data={},
                execution_metadata={"total_tokens": self.usage["total_tokens"]},
            )
        self.flow(name, data)

    def workflow_finished(self, status: str, outputs: dict[str, Any] | None, error: str | None) -> None:
        self.flow(
            "workflow_finished",
            {
                "id": self.ids.workflow_run_id,
                "workflow_id": "wf-simulator",
                "status": status,
                "outputs": outputs,
                "error": error,
                "elapsed_time": 0.5,
                "total_tokens": self.usage["total_tokens"],
                "total_steps": 3,
                "created_at": self.ids.created_at,
                "finished_at": self.ids.created_at + 1,
                "files": [],
                "exceptions_count": 0,
            },
        )

    def message_end(self) -> None:
        self.chat(
            "message_end", id=self.ids.message_id, metadata={"usage": self.usage, "retriever_resources": []}, files=None
        )

    def error(self, status: int, code: str, message: str) -> None:
        ids = self.ids
        self.steps.append(
            Step(
                "event",
                {
                    "event": "error",
                    "message_id": ids.message_id,
                    "conversation_id": ids.conversation_id,
                    "status": status,
                    "code": code,
                    "message": message,
                },
            )
        )


def plan(
    mode: str,
    ids: Ids,
    answer: str,
    usage_: dict[str, Any],
    *,
    fault: str | None,
    first_token_latency: float,
    tokens_per_second: float,
    stall_seconds: float,
    slow_first_token_latency: float,
) -> list[Step]:
    """The full step list of one streamed answer in `mode`, with an optional stream fault."""
    tokens = tokenize(answer)
    first = slow_first_token_latency if fault == "slow" else first_token_latency
    gap = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0
    s = _Script(mode, ids, tokens, usage_, first, gap)
    workflowish = mode in ("workflow", "advanced-chat")
    if fault == "error-first":
        s.error(400, "completion_request_error", "[simulator] the model provider rejected the request")
        return s.steps
    if workflowish:
        s.flow(
            "workflow_started",
            {"id": ids.workflow_run_id, "workflow_id": "wf-simulator", "inputs": {}, "created_at": ids.created_at},
        )
        s.node("node_started")
    if mode == "agent-chat":
        s.chat(
            "agent_thought",
            id=ids.task_id[:8] + "-thought",
            position=1,
            thought="",
            observation="",
            tool="",
            tool_input="",
            message_files=[],
        )
    if fault == "stall":
        s.tokens_out(tokens[:1])  # the stream has started: a retry would be wrong now
        s.steps.append(Step("stall", seconds=stall_seconds))
        return s.steps
    half = tokens[: len(tokens) // 2]
    if fault in ("error-midstream", "disconnect") or (fault == "workflow-failed" and not workflowish):
        s.tokens_out(half)
        if fault != "disconnect":
            s.error(500, "internal_server_error", "[simulator] the model failed mid-answer")
        return s.steps
    if fault == "workflow-failed":
        s.tokens_out(half)
        s.node("node_finished", status="failed", error="[simulator] node failed")
        s.workflow_finished("failed", None, "[simulator] node failed")
        if mode == "advanced-chat":
            s.error(500, "internal_server_error", "[simulator] node failed")
        return s.steps
    if fault == "malformed":
        s.steps.append(Step("raw", raw=b"data: {not json\n\n"))
        s.steps.append(Step("event", {"event": "brand_new_event", "task_id": ids.task_id}))
    s.tokens_out(tokens)
    if mode == "agent-chat":
        s.chat(
            "agent_thought",
            id=ids.task_id[:8] + "-thought",
            position=1,
            thought=answer,
            observation="",
            tool="",
            tool_input="",
            message_files=[],
        )
    if mode == "agent":
        s.chat("message", id=ids.message_id, answer=answer, from_variable_selector=None)
    if fault == "replace" and mode != "workflow":
        s.chat("message_replace", answer=MODERATED_ANSWER, reason="moderation")
    if workflowish:
        s.node("node_finished", status="succeeded")
    if mode != "workflow":
        s.message_end()
    if workflowish:
        s.workflow_finished("succeeded", {"text": answer} if mode == "workflow" else {}, None)
    return s.steps


def stopped_tail(mode: str, ids: Ids, usage_: dict[str, Any]) -> list[dict[str, Any]]:
    """What Dify sends after a stop: `message_end` (chat family) or a stopped `workflow_finished`."""
    s = _Script(mode, ids, [], usage_, 0.0, 0.0)
    if mode == "workflow":
        s.workflow_finished("stopped", None, "[simulator] stopped by the user")
    else:
        s.message_end()
    return [step.payload for step in s.steps]
