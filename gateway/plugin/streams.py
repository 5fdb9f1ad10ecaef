"""`AnswerStream`: a streamed answer as a plugin reads it (`ctx.apps.stream(...)` yields one).

A protocol, so the contract does not load the Dify client: `gateway.dify.stream.DifyAnswerStream` is
the gateway's implementation (and `gateway.testing`'s simulated apps hand out the same class).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.delivery.chat import AnswerSource
from gateway.dify.models import Answer, Delta

__all__ = ["AnswerStream"]


class AnswerStream(AnswerSource, Protocol):
    """One streamed answer, open inside its `async with ctx.apps.stream(...) as stream:` block:

        async for delta in stream:  # or stream.deltas()
            if delta.kind == "text":
                shown += delta.text
            elif delta.kind == "replace":  # output moderation replaced the answer
                shown = delta.text
        answer = stream.answer

    It is also what the chat-delivery engine shows (`deliver`, an `AnswerSource`).
    """

    def deltas(self) -> AsyncIterator[Delta]:
        """Text, replace, reasoning, thought, file, progress and ping steps as they arrive."""
        ...

    def __aiter__(self) -> AsyncIterator[Delta]:
        """The same as `deltas()`."""
        ...

    @property
    def ready(self) -> bool:
        """Whether the next step arrived already, so reading it will not wait for Dify: what is
        ready may be rendered together and sent in one write (never hold back what is not)."""
        ...

    @property
    def answer(self) -> Answer:
        """The answer so far; `answer.complete` is True once Dify said its last word."""
        ...

    @property
    def conversation_id(self) -> str | None:
        """The Dify conversation the answer belongs to, once Dify named it."""
        ...

    async def collect(self) -> Answer:
        """Read the rest of the stream; the complete answer."""
        ...
