"""The gateway's own words shown like an answer (a reset confirmation, a prompt to ask something):
`deliver(said("Done."), adapter, ...)` posts them with the platform's rules, through the same
record, fence and rate limits as an answer from Dify."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from gateway.dify.models import Answer, Delta

__all__ = ["Said", "said"]


class Said:
    """A fixed text as an answer source (one `text` delta)."""

    def __init__(self, text: str) -> None:
        self.answer = Answer(text=text, app="", mode="")

    async def deltas(self) -> AsyncIterator[Delta]:
        yield Delta("text", self.answer.text)


def said(text: str) -> AbstractAsyncContextManager[Said]:
    """`text` as an open answer for `deliver`."""
    return contextlib.nullcontext(Said(text))
