"""Relaying one streamed Dify answer through a frame writer (the streaming surfaces share this)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from endpoints.openai.errors import OpenAIError, from_exception
from gateway.plugin import Answer, Context, Delta, UpstreamError

__all__ = ["Relay"]


@dataclass(slots=True)
class Relay:
    """`frames()` opens the Dify stream, yields b"" once it is open (so a handler can `anext` it
    before answering, and failures up to then keep their HTTP status), then `opening()`, then the
    writer's frames per delta; a mid-answer failure ends with `failed(error)`. `answer` is set
    when the answer completed."""

    ctx: Context
    query: str
    args: dict[str, Any]  # ctx.apps.stream's arguments after the query (with "app")
    feed: Callable[[Delta], list[bytes]]
    failed: Callable[[OpenAIError], list[bytes]]
    opening: Callable[[], list[bytes]] = list
    answer: Answer | None = None

    async def frames(self) -> AsyncIterator[bytes]:
        async with self.ctx.apps.stream(self.query, **self.args) as stream:
            yield b""
            for frame in self.opening():
                yield frame
            try:
                async for delta in stream:
                    for frame in self.feed(delta):
                        if frame:
                            yield frame
            except UpstreamError as exc:
                self.ctx.logger.warning("Dify app %r failed mid-answer: %s", self.args.get("app"), exc.message)
                for frame in self.failed(from_exception(exc)):
                    yield frame
                return
            self.answer = stream.answer
