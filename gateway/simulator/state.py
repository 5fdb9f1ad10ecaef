"""Mutable state of one simulator instance: conversations, running tasks, stats, fault queue."""

from __future__ import annotations

import random
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio

from gateway.simulator.config import SimulatorConfig

__all__ = ["Conversation", "SimulatorState", "Task"]


@dataclass(slots=True)
class Conversation:
    id: str
    user: str
    created_at: int
    inputs: dict[str, Any]
    name: str = "New conversation"
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Task:
    """A running streamed answer; `stopped` is set by a matching stop request."""

    task_id: str
    user: str
    mode: str
    stopped: anyio.Event = field(default_factory=anyio.Event)


class SimulatorState:
    """Everything the simulator remembers. Created per app instance (no globals)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.conversations: dict[str, Conversation] = {}
        self.tasks: dict[str, Task] = {}
        # Every task ever started -> its user. Dify keeps generating after a client disconnect,
        # so a stop that arrives after our stream ended still "matches" (bounded to stay small).
        self.task_users: dict[str, str] = {}
        self.reset()

    def reset(self) -> None:
        """Forget conversations and counters; restore the configured fault queue."""
        self.conversations.clear()
        self.task_users.clear()
        self.requests_total = 0
        self.requests_by_path: dict[str, int] = {}
        self.generation_requests = 0
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_aborted = 0
        self.pings_sent = 0
        self.stops: list[dict[str, Any]] = []
        self.faults_injected: list[str] = []
        self.recent_requests: deque[dict[str, Any]] = deque(maxlen=100)
        self.fail_next = self.config.fail_next
        self.fail_with = self.config.fail_with
        self.scripts: dict[str, list[str]] = {}  # script key -> the texts of its [[say:...]] markers
        self.script_turns: dict[str, int] = {}
        self.conversation_scripts: dict[str, str] = {}  # conversation id -> the script key it follows
        self.uploads: dict[str, dict[str, Any]] = {}  # upload id -> file record (with its user)
        # What the simulator reported as used, per answer (message id; workflow run id for a
        # workflow): the ledger a gateway's usage totals are checked against.
        self.usage_reported: dict[str, dict[str, Any]] = {}

    def start_task(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        if len(self.task_users) >= 10_000:
            self.task_users.pop(next(iter(self.task_users)))
        self.task_users[task.task_id] = task.user

    def report_usage(self, answer_id: str, usage: dict[str, Any]) -> None:
        """Note the usage sent for one answer (sent once per answer; bounded like `task_users`)."""
        if len(self.usage_reported) >= 10_000:
            self.usage_reported.pop(next(iter(self.usage_reported)))
        self.usage_reported[answer_id] = {
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
            "total_price": usage.get("total_price", "0"),
            "currency": usage.get("currency"),
        }

    def usage_totals(self) -> dict[str, Any]:
        reported = self.usage_reported.values()
        return {
            "answers": len(self.usage_reported),
            **{key: sum(u[key] for u in reported) for key in ("prompt_tokens", "completion_tokens", "total_tokens")},
            "total_price": str(sum((Decimal(u["total_price"]) for u in reported), Decimal(0))),
        }

    def count(self, method: str, path: str, body: Any) -> None:
        self.requests_total += 1
        key = f"{method} {path}"
        self.requests_by_path[key] = self.requests_by_path.get(key, 0) + 1
        self.recent_requests.append({"method": method, "path": path, "body": body})

    def pick_fault(self, requested: str | None) -> str | None:
        """The fault for one generation request: marker > fail-next queue > configured fault."""
        fault = requested
        if fault is None and self.fail_next > 0:
            self.fail_next -= 1
            fault = self.fail_with
        if fault is None and self.config.fault is not None and self._rng.random() < self.config.fault_rate:
            fault = self.config.fault
        if fault is not None:
            self.faults_injected.append(fault)
        return fault

    def scripted(self, key: str | None, says: list[str]) -> str | None:
        """The next scripted answer of `key` (`says` starts its script), or None."""
        if key is None:
            return None
        if says and key not in self.scripts:
            self.scripts[key] = says
            self.script_turns[key] = 0
        script = self.scripts.get(key)
        if not script:
            return None
        turn = self.script_turns[key]
        self.script_turns[key] = turn + 1
        return script[min(turn, len(script) - 1)]

    def conversation(self, conversation_id: str | None, user: str, inputs: dict[str, Any], now: int) -> Conversation:
        """Reuse a known conversation or start one. Raises KeyError for an unknown id (or other user)."""
        if conversation_id is not None:
            known = self.conversations.get(conversation_id)
            if known is None or known.user != user:
                raise KeyError(conversation_id)
            return known
        conversation = Conversation(id=str(uuid.uuid4()), user=user, created_at=now, inputs=inputs)
        self.conversations[conversation.id] = conversation
        return conversation

    def stats(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "requests_by_path": dict(self.requests_by_path),
            "generation_requests": self.generation_requests,
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "streams_aborted": self.streams_aborted,
            "active_tasks": len(self.tasks),
            "pings_sent": self.pings_sent,
            "stops": list(self.stops),
            "faults_injected": list(self.faults_injected),
            "conversations": len(self.conversations),
            "fail_next": self.fail_next,
            "recent_requests": list(self.recent_requests),
            "uploads": list(self.uploads.values()),
            "usage_reported": self.usage_totals(),
            "usage_by_answer": dict(self.usage_reported),
        }
