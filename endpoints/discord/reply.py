"""One `/ask` answer on screen, within the life of the interaction token.

The interaction token works for 15 minutes (platforms.md §2.1). Until `deadline` (the endpoint's
`token_deadline`, a margin before that) the answer streams into the deferred response and its
follow-ups. After it:

- with a bot token, the webhook messages are finished with the text they show, and the rest of
  the answer goes on in channel messages (an open code block is reopened there);
- without one, the answer ends with a note saying why (`stopped` turns True, and the caller stops
  reading the answer).
"""

from __future__ import annotations

from endpoints.discord.messages import StreamRenderer
from gateway.plugin import Clock, open_fence

__all__ = ["CONTINUED_NOTE", "LATE_NOTE", "InteractionReply"]

LATE_NOTE = "*(The answer stops here: Discord gives a slash command 15 minutes to answer, and this one took longer.)*"
CONTINUED_NOTE = "*(The answer continues below.)*"


class InteractionReply:
    """Routes the growing answer text to the webhook renderer, then (past `deadline`) the channel one."""

    def __init__(
        self, *, webhook: StreamRenderer, channel: StreamRenderer | None, deadline: float, clock: Clock
    ) -> None:
        self._webhook = webhook
        self._channel = channel
        self._deadline = deadline
        self._clock = clock
        self._offset: int | None = None  # where the channel part of the text starts
        self._carry = ""  # a code fence to reopen at the start of the channel part
        self._shown = ""  # the text the webhook messages show
        self.stopped = False

    @property
    def switched(self) -> bool:
        """True once the answer goes on in channel messages."""
        return self._offset is not None

    async def update(self, text: str) -> None:
        """Show the text so far (throttled)."""
        if await self._past_deadline(text):
            return
        if self._channel is not None and self._offset is not None:
            await self._channel.update(self._rest(text))
        elif await self._webhook.update(text):
            self._shown = text

    async def finish(self, text: str) -> None:
        """Show the whole text (or, once stopped, nothing more)."""
        if await self._past_deadline(text):
            return
        if self._channel is not None and self._offset is not None:
            rest = self._rest(text)
            if rest.strip():
                await self._channel.finish(rest)
        else:
            await self._webhook.finish(text)

    def _rest(self, text: str) -> str:
        assert self._offset is not None
        return self._carry + text[self._offset :]

    async def _past_deadline(self, text: str) -> bool:
        """Switch over when the deadline has passed; True when nothing more may be shown."""
        if self.stopped:
            return True
        if self._offset is not None or self._clock.time() < self._deadline:
            return False
        if self._channel is None:
            await self._webhook.finish(f"{text.rstrip()}\n\n{LATE_NOTE}" if text.strip() else LATE_NOTE)
            self.stopped = True
            return True
        # Only what the webhook shows already is finished there: its token may have little time left.
        shown = self._shown if text.startswith(self._shown) else text
        await self._webhook.finish(shown if shown.strip() else CONTINUED_NOTE)
        self._offset = len(shown)
        self._carry = open_fence(shown)
        return False
