"""Pure text helpers of the chat-delivery engine, re-exported by `gateway.plugin`.

- `EditThrottle`: the engine's pacing of edits, at most once per interval on the injected clock;
  a 429 pushes the next edit out (platforms.md §1.6, §2.4). Plugins leave pacing to `deliver`.
- `split_text`: an answer longer than a message holds, split into messages that each render on
  their own: at a paragraph, line, sentence or word boundary (outside code where it can), a code
  block cut in two closed and reopened with its language, nothing but whitespace at the cuts lost.
  Each message depends only on the text up to its end plus one window, so while an answer grows
  only its last message changes.
- `last_break`, `cut_point` and `open_fence`: the pieces, used by the engine to split an
  append-only native stream (`native.NativePages`); a plugin uses them only to test its `Protect`.
- `as_text`: a payload field as a non-empty string.
- `hide_reasoning`: an answer without the `<think>` blocks of reasoning models.

Nothing here does I/O or knows a platform; what differs between platforms (the message limit,
tokens that must not be cut such as Slack's `<url|label>`) is a parameter.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Sequence

from gateway.clock import Clock

__all__ = [
    "FENCE",
    "MIN_LIMIT",
    "EditThrottle",
    "Protect",
    "as_text",
    "backoff_seconds",
    "cut_point",
    "hide_reasoning",
    "last_break",
    "open_fence",
    "split_text",
]

FENCE = "```"
MIN_LIMIT = 100  # below this a closing and reopening fence would eat most of a message
_CLOSE = "\n" + FENCE
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,20}")
# Where a piece may end, best first: (separator, offset of the cut, only outside code). The offset
# keeps a sentence's full stop in the first piece. Inside code a line break still beats a space.
_BREAKS = (("\n\n", 0, True), ("\n", 0, True), ("\n", 0, False), (". ", 1, False), (" ", 0, False))

#: Moves a cut back out of a platform token: `(text, cut, floor) -> cut`, never below `floor`.
Protect = Callable[[str, int, int], int]


# -- pacing ---------------------------------------------------------------------------------------


class EditThrottle:
    """Decides when the next edit of a streamed answer may go out, on `clock` (monotonic time).

    The first edit may go at once; after `mark()` the next waits `interval` seconds, and
    `backoff(seconds)` (a 429's wait) holds edits at least that long::

        throttle = EditThrottle(1.0, ctx.clock)
        if throttle.ready():
            await edit(text)
            throttle.mark()
        ...
        await throttle.wait()  # the final edit waits rather than skips
    """

    def __init__(self, interval: float, clock: Clock) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._clock = clock
        self._next: float | None = None  # None: nothing sent yet, the first edit goes at once

    def wait_time(self) -> float:
        """Seconds until the next edit may go (0 when it may go now)."""
        if self._next is None:
            return 0.0
        return max(0.0, self._next - self._clock.monotonic())

    def ready(self) -> bool:
        """True when an edit may go now."""
        return self.wait_time() == 0.0

    async def wait(self) -> None:
        """Sleep on the clock until an edit may go."""
        delay = self.wait_time()
        if delay > 0:
            await self._clock.sleep(delay)

    def mark(self) -> None:
        """An edit went out now: the next one waits `interval`."""
        self._push(self._clock.monotonic() + self.interval)

    def backoff(self, seconds: float) -> None:
        """Hold edits for `seconds` (a 429's wait), on top of the normal interval, never shortening it."""
        self._push(self._clock.monotonic() + max(0.0, seconds))

    def _push(self, moment: float) -> None:
        self._next = moment if self._next is None else max(self._next, moment)


def backoff_seconds(attempt: int, *, base: float = 1.0, cap: float = 10.0) -> float:
    """The wait before retrying a platform call that failed without saying how long to wait (a 5xx,
    a timeout, an answer that is not JSON): `base` doubled per earlier retry, never more than `cap`.

    Args:
        attempt: how many retries came before this one (0 for the first retry).
    """
    return min(base * 2.0 ** max(attempt, 0), cap)


def as_text(value: object) -> str | None:
    """A payload field as a non-empty string: a string as is, an integer id spelled out; else None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


_THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)
_THINK_OPEN = "<think>"


def hide_reasoning(text: str, *, partial: bool = False) -> str:
    """Drop `<think>…</think>` blocks, and one still open at the end.

    With `partial` (a text still growing), a trailing start of `<think>` is held back too, so
    what is shown only ever grows.
    """
    text = _THINK.sub("", text)
    start = text.find(_THINK_OPEN)
    if start >= 0:
        return text[:start]
    if partial:
        for size in range(len(_THINK_OPEN) - 1, 0, -1):
            if text.endswith(_THINK_OPEN[:size]):
                return text[:-size]
    return text


# -- code fences ----------------------------------------------------------------------------------


def _fences(text: str) -> list[int]:
    """Offsets of every ``` in `text` (each one opens or closes a code block)."""
    out, pos = [], text.find(FENCE)
    while pos != -1:
        out.append(pos)
        pos = text.find(FENCE, pos + len(FENCE))
    return out


def open_fence(text: str) -> str:
    """The opener (```` ```py\\n ````) of a code block left open at the end of `text`, or ""."""
    fences = _fences(text)
    if len(fences) % 2 == 0:
        return ""
    after = fences[-1] + len(FENCE)
    # A language tag only counts once its line has ended; "```code```" style has none.
    line, newline, _ = text[after:].partition("\n")
    language = line if newline and _LANGUAGE.fullmatch(line) else ""
    return f"{FENCE}{language}\n"


def _inside(fences: Sequence[int], offset: int) -> bool:
    """Whether `offset` lies inside a code block, given the offsets of the fences."""
    return bisect_right(fences, offset - len(FENCE)) % 2 == 1


# -- splitting ------------------------------------------------------------------------------------


def _protected(text: str, cut: int, floor: int, protect: Protect | None) -> int:
    return cut if protect is None else min(cut, max(floor, protect(text, cut, floor)))


def _last_break(text: str, room: int, floor: int, fences: Sequence[int], protect: Protect | None) -> int | None:
    window = text[:room]
    for separator, offset, outside_only in _BREAKS:
        at = window.rfind(separator, floor)
        while at >= floor:
            if not outside_only or not _inside(fences, at):
                return _protected(text, at + offset, floor, protect)
            at = window.rfind(separator, floor, at)
    return None


def last_break(text: str, room: int, floor: int = 1, *, protect: Protect | None = None) -> int | None:
    """The best boundary to end a piece of `text` within `room` characters (separator included), at
    or after `floor`: paragraph, line, sentence, word, moved out of a token by `protect`; None if none."""
    return _last_break(text, room, floor, (), protect)


def _cut(text: str, room: int, floor: int, fences: Sequence[int], protect: Protect | None) -> int:
    # The separator at a break is dropped, so one right at the limit still fits.
    found = _last_break(text, room + 1, floor, fences, protect)
    return _protected(text, room, floor, protect) if found is None else found


def cut_point(text: str, room: int, *, protect: Protect | None = None) -> int:
    """Where to end a piece of `text` that may hold at most `room` characters.

    The best boundary in the second half wins (see `last_break`); without one the cut is hard at
    `room`. The result is between `room // 2` and `room`.
    """
    if len(text) <= room:
        return len(text)
    return _cut(text, room, max(1, room // 2), (), protect)


def _resume(text: str, cut: int) -> int:
    """Where the next piece starts after a cut: past the line breaks there, or the one space."""
    end = cut
    while text.startswith("\n", end):
        end += 1
    if end == cut and text.startswith(" ", cut):
        end += 1
    return end


def _trim(piece: str, reopened: bool) -> str:
    """Whitespace around a message is dropped (platforms drop it too), but not indentation in a reopened block."""
    return piece.rstrip() if reopened else piece.strip()


def split_text(text: str, limit: int, *, protect: Protect | None = None) -> list[str]:
    """Split `text` into messages of at most `limit` characters that each render on their own.

    A cut prefers, within the second half of a message: a paragraph break outside code, a line
    break outside code, any line break, a sentence's end, a space; else it is hard at the limit
    (moved back out of a token by `protect`). A code block cut in two is closed at the end of one
    message and reopened, with its language, at the start of the next; a block still open at the
    end of the text is closed. Messages are trimmed; blank text gives none.

    Args:
        text: the answer (Markdown, or a platform's markup).
        limit: the most characters a message may hold (Discord 2,000; a Slack section 3,000).
        protect: keeps platform tokens whole, e.g. Slack's `<url|label>` and `&amp;`.

    Raises:
        ValueError: `limit` is below `MIN_LIMIT`.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT}")
    room = limit - len(_CLOSE)  # always room for a closing fence, so a message never has to be cut again
    parts: list[str] = []
    pos, opener = 0, ""
    while pos < len(text):
        rest = opener + text[pos:]
        fences = _fences(rest)
        closer = _CLOSE if len(fences) % 2 else ""
        if len(rest.rstrip()) + len(closer) <= limit:
            if text[pos:].strip():
                parts.append(_trim(rest, bool(opener)) + closer)
            break
        # Breaks inside the reopened fence are not considered: every message moves the text on.
        end = _cut(rest, room, max(len(opener) + 1, room // 2), fences, protect)
        reopen = open_fence(rest[:end])
        if rest[len(opener) : end].strip():  # a message of nothing but whitespace is not sent
            parts.append(_trim(rest[:end], bool(opener)) + (_CLOSE if reopen else ""))
        pos += _resume(rest, end) - len(opener)
        opener = reopen
    return parts
