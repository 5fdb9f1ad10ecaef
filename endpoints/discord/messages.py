"""Showing a streamed answer as a series of Discord messages, whatever sends them.

Both the interaction endpoint (webhook edits with the interaction token, channel messages with
the bot token) and the gateway bot (discord.py) render answers the same way: they implement a
`MessageSink`, and `StreamRenderer` does the rest (platforms.md §2.1 "Streaming through an
interaction", §2.6 "Typing and streaming by edits"):

- the growing text is paged at 2,000 characters (`split_text`); page N is message N;
- while streaming, a render goes out at most once per throttle interval: messages whose page
  changed are edited, new pages are sent as new messages;
- a sink that is told not to wait may answer `TryLater` (a 429, a passing 5xx): the update is
  skipped and the next one carries the text;
- `finish` always sends a final full render, after the throttle allows it, waiting out rate limits;
  messages past its last page go, those left over from an earlier attempt of the job included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from endpoints.discord.rendering import EMPTY_ANSWER, MAX_CONTENT
from gateway.plugin import EditThrottle, split_text

__all__ = ["MessageSink", "PagedMessages", "StreamRenderer", "TryLater"]


class TryLater(Exception):
    """A sink call that was not urgent was refused for now (rate limit, passing outage)."""

    def __init__(self, retry_after: float = 1.0) -> None:
        super().__init__(f"try again in {retry_after:.2f}s")
        self.retry_after = retry_after


class MessageSink(Protocol):
    """Where messages go. `wait=False` calls may raise `TryLater` instead of waiting."""

    async def send(self, content: str, *, wait: bool) -> Any:
        """Post a new message; returns a handle for `edit` and `delete`."""
        ...

    async def edit(self, handle: Any, content: str, *, wait: bool) -> None:
        """Replace the content of a message this sink sent (or was given)."""
        ...

    async def delete(self, handle: Any, *, wait: bool) -> None:
        """Remove a message that is no longer needed (the text shrank)."""
        ...


class PagedMessages:
    """The messages showing one text: message N shows page N of the text.

    `existing` are handles of messages that already exist but show nothing of the text yet
    (the deferred "thinking…" response of an interaction, the follow-ups an earlier attempt of
    the job posted): they are edited before any is sent. The first message is never deleted.
    """

    def __init__(self, sink: MessageSink, *, existing: Sequence[Any] = (), limit: int = MAX_CONTENT) -> None:
        self._sink = sink
        self._limit = limit
        self._handles: list[Any] = list(existing)
        self._shown: list[str | None] = [None] * len(self._handles)

    @property
    def shown(self) -> list[str]:
        """What the messages show now (placeholders left out)."""
        return [content for content in self._shown if content is not None]

    async def render(self, text: str, *, wait: bool, final: bool = False) -> bool:
        """Make the messages show `text`; what already shows the right page is left alone.

        While the text grows, `existing` messages past its last page wait for it; a `final`
        render deletes them. Returns whether any message was sent, edited or deleted.
        """
        pages = split_text(text, self._limit)
        changed = False
        for index, page in enumerate(pages):
            if index < len(self._handles):
                if self._shown[index] != page:
                    await self._sink.edit(self._handles[index], page, wait=wait)
                    self._shown[index] = page
                    changed = True
            else:
                self._handles.append(await self._sink.send(page, wait=wait))
                self._shown.append(page)
                changed = True
        # The text shrank (a `replace`): messages past its last page go.
        while len(self._handles) > max(1, len(pages)) and (final or self._shown[-1] is not None):
            await self._sink.delete(self._handles[-1], wait=wait)
            self._handles.pop()
            self._shown.pop()
            changed = True
        return changed


class StreamRenderer:
    """Renders a streamed text through `messages`, paced by `throttle`."""

    def __init__(self, messages: PagedMessages, throttle: EditThrottle) -> None:
        self.messages = messages
        self._throttle = throttle

    async def update(self, text: str) -> bool:
        """Render `text` if the throttle allows; True when the messages show it now."""
        if not text.strip() or not self._throttle.ready():
            return False
        try:
            changed = await self.messages.render(text, wait=False)
        except TryLater as later:
            self._throttle.backoff(later.retry_after)
            self._throttle.mark()
            return False
        if changed:  # an unchanged text (a keep-alive) costs no edit, so it does not hold the next one
            self._throttle.mark()
        return True

    async def finish(self, text: str) -> None:
        """The final full render (an empty answer says so), waiting out the throttle and rate limits."""
        await self._throttle.wait()
        await self.messages.render(text if text.strip() else EMPTY_ANSWER, wait=True, final=True)
