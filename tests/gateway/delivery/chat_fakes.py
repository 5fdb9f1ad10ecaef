"""Fakes for the chat-delivery engine's tests: a chat platform that records every
call (with the clock's time), and a streamed answer played from a script on the same clock
(a `VirtualClock`, from the plugin test kit)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from gateway.delivery.chat import ChatRules, MessageRef, StreamUnavailable
from gateway.dify.models import Answer, Delta
from gateway.exceptions import GatewayError, RateLimited
from gateway.testing.clock import VirtualClock

# VirtualClock moved to the kit
__all__ = ["Call", "FakeAnswer", "FakeChat", "FakeNative", "FakeResumable", "VirtualClock", "text"]


@dataclass(frozen=True)
class Call:
    name: str  # post, edit, delete, start, append, stop
    ref: str
    text: str
    at: float  # monotonic time on the fake clock


def text(*chunks: str, delay: float = 0.0) -> list[tuple[float, Delta]]:
    """Script steps: each chunk a `text` delta arriving `delay` seconds after the one before."""
    return [(delay, Delta("text", chunk)) for chunk in chunks]


class FakeAnswer:
    """`ctx.apps.stream(...)` as the engine sees it: plays `steps`, then fails with `fail` if given."""

    def __init__(
        self,
        clock: VirtualClock,
        steps: Sequence[tuple[float, Delta]] = (),
        *,
        fail: GatewayError | None = None,
        fail_on_open: GatewayError | None = None,
        final: str | None = None,
    ) -> None:
        self.clock = clock
        self.steps = list(steps)
        self.fail = fail
        self.fail_on_open = fail_on_open
        self.final = final
        self.opened = False
        self.closed = False
        self.read = 0  # steps handed out
        self.shown = ""

    async def __aenter__(self) -> FakeAnswer:
        if self.fail_on_open is not None:
            raise self.fail_on_open
        self.opened = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.closed = True

    def deltas(self) -> AsyncIterator[Delta]:
        return _Steps(self)

    @property
    def answer(self) -> Answer:
        return Answer(text=self.shown if self.final is None else self.final, app="app", mode="chat")


class _Steps:
    def __init__(self, answer: FakeAnswer) -> None:
        self.answer = answer

    def __aiter__(self) -> _Steps:
        return self

    async def __anext__(self) -> Delta:
        answer = self.answer
        if answer.read >= len(answer.steps):
            if answer.fail is not None:
                raise answer.fail
            raise StopAsyncIteration
        delay, delta = answer.steps[answer.read]
        if delay:
            await answer.clock.sleep(delay)
        answer.read += 1
        if delta.kind == "text":
            answer.shown += delta.text
        elif delta.kind == "replace":
            answer.shown = delta.text
        return delta


@dataclass
class FakeNative:
    """A native stream: appends; refuses with `StreamUnavailable` once `fail_after` calls were made."""

    chat: FakeChat
    limit: int = 500
    fail_after: int | None = None

    async def start(self, text: str) -> MessageRef:
        self._check()
        ref = self.chat.new_ref()
        self.chat.record("start", ref, text)
        self.chat.messages[ref] = text
        return ref

    async def append(self, ref: MessageRef, text: str) -> None:
        self._check()
        self.chat.record("append", ref, text)
        self.chat.messages[ref] += text

    async def stop(self, ref: MessageRef) -> None:
        self.chat.record("stop", ref, "")

    def _check(self) -> None:
        calls = [c for c in self.chat.calls if c.name in ("start", "append")]
        if self.fail_after is not None and len(calls) >= self.fail_after:
            raise StreamUnavailable("streaming refused")


@dataclass
class FakeResumable(FakeNative):
    """A native stream whose messages can be shown again from the start (Lark's CardKit cards)."""

    async def resume(self, ref: MessageRef, text: str) -> None:
        self._check()
        self.chat.record("resume", ref, text)
        self.chat.messages[ref] = text


@dataclass
class FakeChat:
    """A chat platform: `messages` is what it shows now (in posting order), `calls` every write."""

    clock: VirtualClock
    rules: ChatRules = field(default_factory=lambda: ChatRules(limit=200, edit_interval=1.0))
    original: MessageRef | None = None
    native: FakeNative | None = None
    budget: int | None = None  # writes allowed (None: no limit)
    messages: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    rate_limits: list[float] = field(default_factory=list)  # waits to answer the next writes with
    typing_log: list[str] = field(default_factory=list)
    has_typing: bool = False
    _next: int = 0

    def __post_init__(self) -> None:
        if self.original is not None:
            self.messages[self.original] = "…thinking"

    def new_ref(self) -> str:
        self._next += 1
        return f"m{self._next}"

    def record(self, name: str, ref: str, text: str) -> None:
        if self.rate_limits:
            raise RateLimited("slow down", retry_after=self.rate_limits.pop(0))
        self.calls.append(Call(name, ref, text, self.clock.monotonic()))
        if self.budget is not None:
            self.budget -= 1

    def with_rules(self, **changes: Any) -> FakeChat:
        self.rules = replace(self.rules, **changes)
        return self

    def shown(self) -> list[str]:
        return list(self.messages.values())

    def named(self, *names: str) -> list[Call]:
        return [c for c in self.calls if c.name in names]

    async def post(self, text: str) -> MessageRef:
        ref = self.new_ref()
        self.record("post", ref, text)
        self.messages[ref] = text
        return ref

    async def edit(self, ref: MessageRef, text: str) -> None:
        self.record("edit", ref, text)
        self.messages[ref] = text

    async def delete(self, ref: MessageRef) -> None:
        self.record("delete", ref, "")
        self.messages.pop(ref, None)

    def typing(self) -> contextlib.AbstractAsyncContextManager[object] | None:
        return self._typing() if self.has_typing else None

    @contextlib.asynccontextmanager
    async def _typing(self) -> AsyncIterator[None]:
        self.typing_log.append(f"start@{len(self.calls)}")
        try:
            yield
        finally:
            self.typing_log.append(f"stop@{len(self.calls)}")

    def writes_left(self) -> int | None:
        return self.budget


class JobStorage:
    """A plugin's storage as the record sees it; remembers the fence of each write."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.ttls: dict[str, float | None] = {}
        self.fences: list[object] = []

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str, *, ttl: float | None = None, fence: object = None) -> None:
        self.data[key], self.ttls[key] = value, ttl
        self.fences.append(fence)
