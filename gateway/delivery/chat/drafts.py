"""An answer previewed in the platform's drafts while it streams, posted as messages at the end.

Telegram's `sendMessageDraft` (platforms.md §3) shows a private chat a preview of a message
being written; the message itself is then sent once, with its final text. While the answer
streams, the page being written is previewed (each page its own draft) and the pages before it,
which no longer change, are posted; the final render posts the rest (`Pages`, so a rerun edits
what an earlier run posted). When the platform refuses drafts (`StreamUnavailable`), the answer
goes on in posted and edited messages.
"""

from __future__ import annotations

from functools import partial

from gateway.delivery.chat.adapter import Draft, StreamUnavailable
from gateway.delivery.chat.pages import Pages
from gateway.delivery.chat.writes import Writes

__all__ = ["DraftPages"]


class DraftPages:
    """The messages of one text, previewed through `draft` until the final render."""

    def __init__(self, draft: Draft, pages: Pages, writes: Writes) -> None:
        self._draft: Draft | None = draft
        self._pages = pages
        self._writes = writes
        self._previewed: tuple[int, str] | None = None

    @property
    def shown(self) -> str:
        return self._pages.shown

    @property
    def messages(self) -> int:
        return self._pages.messages

    async def show(self, text: str, *, final: bool) -> bool:
        """Preview `text` (Markdown) while it grows; post it when `final`."""
        if final or self._draft is None:
            return await self._pages.show(text, final=final)
        rendered = self._pages.paginate(text)
        if not rendered:
            return False
        finished, preview = rendered[:-1], (len(rendered) - 1, rendered[-1])
        wrote = bool(finished) and await self._pages.show_pages(finished, final=False)
        if preview == self._previewed:
            return wrote
        try:
            await self._writes(partial(self._draft.show, preview[1], preview[0]))
        except StreamUnavailable:
            self._draft = None  # no drafts here: posted and edited messages from now on
            return await self._pages.show(text, final=False)
        self._previewed = preview
        return True
