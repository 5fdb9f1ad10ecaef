"""An answer as a series of messages: message N shows page N of the text, edited as it grows.

The text is rendered with the platform's rules and split at its limit by `gateway.delivery.chat.text.split_text`
(code fences closed and reopened; while the text grows only its last page changes). A render
edits the messages whose page changed, posts new pages and, once the text shrank (a `replace`),
deletes the messages past its last page. Messages that exist already are used first, in order:
the adapter's `original` (never deleted) and those an earlier run of the job posted (they wait,
unchanged, until the final render tells whether they are still needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

from gateway.delivery.chat.adapter import ChatAdapter, MessageRef
from gateway.delivery.chat.posted import Recorder
from gateway.delivery.chat.text import MIN_LIMIT, split_text
from gateway.delivery.chat.writes import Writes

__all__ = ["Pages"]


@dataclass(frozen=True, slots=True)
class _Step:
    action: Literal["edit", "post", "delete"]
    index: int
    page: str = ""


class Pages:
    """The messages showing one text through one adapter."""

    def __init__(
        self, adapter: ChatAdapter, writes: Writes, record: Recorder, *, earlier: Sequence[MessageRef] = ()
    ) -> None:
        self._adapter = adapter
        self._rules = adapter.rules
        self._writes = writes
        self._record = record
        self._fixed = 0 if adapter.original is None else 1
        # A message that cannot be edited is no use to a rerun.
        reused = list(earlier) if self._rules.edits_posts else []
        self._refs: list[MessageRef] = [*([] if adapter.original is None else [adapter.original]), *reused]
        self._shown: list[str | None] = [None] * len(self._refs)
        self._updates = 0
        self.shown = ""  # the (Markdown) text the messages show in full

    @property
    def messages(self) -> int:
        """How many messages there are."""
        return len(self._refs)

    @property
    def empty(self) -> bool:
        """True while no message exists."""
        return not self._refs

    async def placeholder(self, text: str) -> None:
        """Post `text` (Markdown) as the first message, to be replaced by the answer."""
        await self._apply(self._plan(self.paginate(text)[:1], final=False))

    def paginate(self, text: str) -> list[str]:
        """`text` (Markdown) as the rendered pages of the platform's messages."""
        rules = self._rules
        if rules.render_pages:
            return self._rendered_pages(text, rules.limit)
        return split_text(rules.render(text), rules.limit, protect=rules.protect)

    def _rendered_pages(self, text: str, limit: int) -> list[str]:
        """`text` split at `limit` and each page rendered; a page whose render doesn't fit
        (`ChatRules.fits`) split again at half the limit."""
        rules = self._rules
        pages: list[str] = []
        for page in split_text(text, limit, protect=rules.protect):
            rendered = rules.render(page)
            if rules.fits is not None and not rules.fits(rendered) and limit // 2 >= MIN_LIMIT:
                pages += self._rendered_pages(page, limit // 2)
            elif rendered:
                pages.append(rendered)
        return pages

    async def show(self, text: str, *, final: bool) -> bool:
        """Make the messages show `text` (Markdown); True when anything was written.

        While streaming (`final` False) a render may be skipped: blank text, the update cap
        reached, or the platform's write budget down to the one kept for the final render.
        """
        wrote = await self.show_pages(self.paginate(text), final=final)
        self.shown = text
        return wrote

    async def show_pages(self, pages: list[str], *, final: bool) -> bool:
        """Make the messages show `pages` (rendered); see `show`."""
        rules = self._rules
        budget = self._adapter.writes_left()
        if final:
            steps = self._plan(pages, final=True)
            if budget is not None and len(steps) > budget:
                steps = self._plan(self._truncated(pages, steps, budget), final=True) if budget > 0 else []
        else:
            if not pages or (rules.max_updates is not None and self._updates >= rules.max_updates):
                return False
            if not rules.edits_posts:
                pages = pages[:1] if self._refs else []
            if pages and rules.partial_suffix and len(pages[-1]) + len(rules.partial_suffix) <= rules.limit:
                pages[-1] += rules.partial_suffix
            steps = self._plan(pages, final=False)
            if budget is not None and len(steps) >= budget:  # one write stays for the final render
                return False
        await self._apply(steps)
        if not final and steps:
            self._updates += 1
        return bool(steps)

    def _plan(self, pages: Sequence[str], *, final: bool) -> list[_Step]:
        steps = [
            _Step("edit" if index < len(self._refs) else "post", index, page)
            for index, page in enumerate(pages)
            if index >= len(self._refs) or self._shown[index] != page
        ]
        # Past the last page: messages go once they showed something (those of an earlier run
        # wait for the final render, the text may grow into them).
        index = len(self._refs) - 1
        while index >= max(self._fixed, len(pages)) and (final or self._shown[index] is not None):
            steps.append(_Step("delete", index))
            index -= 1
        return steps

    def _truncated(self, pages: Sequence[str], steps: Sequence[_Step], budget: int) -> list[str]:
        """The pages up to the last write the budget allows, that one ending with the truncation note."""
        rules = self._rules
        kept = list(pages[: steps[budget - 1].index + 1])
        note = "\n\n" + rules.render(rules.truncated_note)
        last = kept[-1]
        if len(last) + len(note) > rules.limit:
            last = split_text(last, max(MIN_LIMIT, rules.limit - len(note)), protect=rules.protect)[0]
        kept[-1] = last + note
        return kept

    async def _apply(self, steps: Sequence[_Step]) -> None:
        adapter = self._adapter
        for step in steps:
            if step.action == "post":
                ref = await self._writes(partial(adapter.post, step.page))
                self._refs.append(ref)
                self._shown.append(step.page)
                await self._record.add(ref)  # recorded before anything else happens
            elif step.action == "edit":
                await self._writes(partial(adapter.edit, self._refs[step.index], step.page))
                self._shown[step.index] = step.page
            else:
                ref = self._refs[step.index]
                await self._writes(partial(adapter.delete, ref))
                del self._refs[step.index], self._shown[step.index]
                await self._record.remove(ref)
