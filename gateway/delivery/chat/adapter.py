"""What a chat platform gives the delivery engine: its rules (`ChatRules`) and its calls (`ChatAdapter`).

A platform plugin writes an adapter: the post/edit/delete calls of its API, optionally a native
stream (`NativeStream`) and a typing indicator, and the rules of its messages (the limit, how
Markdown is rendered and which tokens must not be cut, the notes it shows). The engine
(`gateway.delivery.chat.engine.deliver`) does the rest: pacing, paging, rate limits, reruns,
failures.

Errors an adapter raises:

- `RateLimited(retry_after=…)` (from `gateway.exceptions`): the platform asked to wait; the engine
  waits that long on its clock and makes the same call again.
- `StreamUnavailable`: native streaming was refused or the stream expired; the engine goes on by
  posting and editing messages.
- anything else ends the delivery (the plugin maps it to a job outcome).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gateway.delivery.chat.text import Protect
from gateway.exceptions import BudgetExceeded, GatewayError, UpstreamError

__all__ = [
    "ChatAdapter",
    "ChatRules",
    "Draft",
    "Fence",
    "MessageRef",
    "NativeStream",
    "ResumableStream",
    "StreamUnavailable",
    "default_failure_note",
    "failure_code",
]

#: A posted message, as the platform names it (Slack's `ts`, a Discord message id, "@original").
MessageRef = str

#: Called before every platform write; raises to stop a run that no longer owns its job.
Fence = Callable[[], Awaitable[object]]


class StreamUnavailable(GatewayError):
    """The platform refused native streaming, or an open stream expired: go on with edited messages."""

    code = "stream_unavailable"


def failure_code(error: GatewayError) -> str:
    """The code a failure note names: Dify's own when it gave one, else the gateway's."""
    return (error.upstream_code if isinstance(error, UpstreamError) else None) or error.code


def default_failure_note(error: GatewayError, partial: bool) -> str:
    """A short note for the reader; the detail belongs in the log."""
    code = failure_code(error)
    if isinstance(error, BudgetExceeded):
        return f"⚠️ This bot has used up its monthly budget ({code}), so it can't answer until it is raised or renewed."
    if partial:
        return f"⚠️ The answer was cut short ({code}). Please ask again."
    return f"⚠️ Sorry, no answer could be given ({code}). Please try again in a moment."


def _same(text: str) -> str:
    return text


def _all_visible(text: str, final: bool) -> str:
    return text


@dataclass(frozen=True, slots=True)
class ChatRules:
    """How one platform shows an answer. Only `limit` has no default.

    Args:
        limit: the most characters a message may hold, as rendered (Discord 2,000; a Slack section 3,000).
        render: the answer's Markdown as the platform's markup (Slack: mrkdwn, escaped); applied
            before splitting, so the limit counts what is sent.
        protect: keeps platform tokens whole when a message is cut (see `gateway.delivery.chat.text.split_text`).
        visible: what of the answer's Markdown is shown, `(text, final) -> text`; e.g. `<think>`
            blocks hidden. While streaming (`final` False) it must only hold text back, never
            change what it showed.
        edit_interval: seconds between writes while the answer streams (platforms.md §1.6, §2.4).
        placeholder: posted (rendered) before the answer starts when no message exists yet.
        empty_text: the final text of an answer with no text (Markdown).
        failure_note: `(error, partial) -> Markdown`, appended after the text shown so far, or shown
            alone when there was none.
        expires_at: wall-clock time after which the adapter may no longer write (an interaction
            token's life, less a margin); None: never.
        expired_note: appended when the time is up and nothing takes over (`deliver(handover=…)`).
        continued_note: shown in the first message when the time is up before it showed anything
            and another adapter takes over.
        edits_posts: False when posted messages cannot be edited (a slash command's `response_url`
            can replace only the original): only the first message is updated while streaming,
            and further pages are posted at the end.
        max_updates: the most writes made while the answer streams (the final render excluded).
        partial_suffix: added to the last message while the answer streams (e.g. " …").
        truncated_note: appended to the last message that fits when `ChatAdapter.writes_left`
            runs out before the answer does.
        rate_limit_attempts: tries of one write that keeps being rate limited before giving up.
        render_pages: split the Markdown first, then render each page on its own: for markup whose
            tags can't be cut between messages (Telegram's HTML); `limit` then counts the
            Markdown of a page (Telegram counts text after entity parsing, which is no longer).
        fits: with `render_pages`, whether a rendered page fits one message; a page that doesn't
            (its render grew: escapes that show as more characters, a platform that counts
            UTF-16 units) is split again, smaller, until it does. None: every page fits.
    """

    limit: int
    render: Callable[[str], str] = _same
    protect: Protect | None = None
    visible: Callable[[str, bool], str] = _all_visible
    edit_interval: float = 1.0
    placeholder: str | None = None
    empty_text: str = "_(The app returned an empty answer.)_"
    failure_note: Callable[[GatewayError, bool], str] = field(default=default_failure_note)
    expires_at: float | None = None
    expired_note: str = "_(The answer stops here: the time to answer ran out.)_"
    continued_note: str = "_(The answer continues below.)_"
    edits_posts: bool = True
    max_updates: int | None = None
    partial_suffix: str = ""
    truncated_note: str = "_(The answer is too long to show here in full.)_"
    rate_limit_attempts: int = 5
    render_pages: bool = False
    fits: Callable[[str], bool] | None = None


class NativeStream(Protocol):
    """A platform's own streaming of a message (Slack's chat.startStream/appendStream/stopStream).

    Text is Markdown and is appended: each call carries only new text. The adapter escapes what
    the platform needs (e.g. defusing mentions).
    """

    @property
    def limit(self) -> int:
        """The most characters one streamed message may hold."""
        ...

    async def start(self, text: str) -> MessageRef:
        """Open a streamed message showing `text`; its reference."""
        ...

    async def append(self, ref: MessageRef, text: str) -> None:
        """Append `text` to an open stream."""
        ...

    async def stop(self, ref: MessageRef) -> None:
        """Close a stream: the message keeps what it shows."""
        ...


class Draft(Protocol):
    """A platform's preview of a message being written (Telegram's sendMessageDraft in private
    chats): shown while the answer streams, replaced by the messages posted at the end.

    Passed to `deliver(draft=…)` next to the adapter; raising `StreamUnavailable` (the platform
    refuses drafts) makes the engine go on with posted and edited messages.
    """

    async def show(self, text: str, page: int) -> None:
        """Preview `text` (one rendered page) as message `page` (0 first) of the answer; replaces
        the last preview of that page."""


@runtime_checkable
class ResumableStream(NativeStream, Protocol):
    """A native stream whose messages can be shown again from the start and stream again (Lark's
    CardKit cards: a card's text is replaced at will). A rerun of the job goes on in the streams an
    earlier run opened, in order, instead of deleting them; those it no longer needs are deleted
    at the end."""

    async def resume(self, ref: MessageRef, text: str) -> None:
        """Make the stream `ref` show `text` (from its start) and take appends again."""
        ...


class ChatAdapter(Protocol):
    """One platform's messages in one place (a thread, a channel, an interaction)."""

    @property
    def rules(self) -> ChatRules:
        """How answers look on this platform."""
        ...

    @property
    def original(self) -> MessageRef | None:
        """A message that exists before the answer (Discord's deferred response): it shows the first page."""
        ...

    @property
    def native(self) -> NativeStream | None:
        """The platform's native streaming, when it has one and it is switched on."""
        ...

    async def post(self, text: str) -> MessageRef:
        """Post a new message (rendered text, within the limit); its reference."""
        ...

    async def edit(self, ref: MessageRef, text: str) -> None:
        """Replace what a message shows."""
        ...

    async def delete(self, ref: MessageRef) -> None:
        """Remove a message that is no longer needed (already gone is not an error)."""
        ...

    def typing(self) -> AbstractAsyncContextManager[object] | None:
        """A "typing…" indicator held until the first words are shown, or None."""
        ...

    def writes_left(self) -> int | None:
        """Writes the platform still allows (a `response_url` takes 5), or None for no limit."""
        ...
