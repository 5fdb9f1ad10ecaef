"""A fixed reply (the gateway's own words: a greeting, "conversation reset") as an answer to
`deliver`, so it is posted like any answer: fenced, recorded, never twice on a rerun."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from gateway.dify.models import Answer, Delta

if TYPE_CHECKING:
    from gateway.delivery.chat.engine import AnswerSource

__all__ = ["said"]


class _Said:
    def __init__(self, text: str) -> None:
        self.answer = Answer(text=text, app="", mode="")

    async def deltas(self) -> AsyncIterator[Delta]:
        yield Delta("text", self.answer.text)


def said(text: str) -> AbstractAsyncContextManager[AnswerSource]:
    """`text` (Markdown) as an answer: `await deliver(said("Done."), adapter, ...)`."""
    return contextlib.nullcontext(_Said(text))
