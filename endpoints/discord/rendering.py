"""Pure text helpers for Discord messages: paging at 2,000 characters, code fences, answer text.

Discord refuses `content` over 2,000 characters ("Must be 2000 or fewer in length"), and bridges
that cut at `[:2000]` lose text (LangBot#1472). `paginate` splits an answer into pages instead:
at a paragraph break outside code where one exists in the second half of the page, else at a line
break, a space, and only as a last resort mid-word. A page that ends inside a code fence gets the
fence closed, and the next page reopens it with the same language, so every message renders.

Streaming renders the growing text again and again; each page depends only on the text up to its
end plus one window, so earlier pages stay the same while the last one grows.
"""

from __future__ import annotations

import re
from bisect import bisect_right

__all__ = [
    "EMPTY_ANSWER",
    "FENCE",
    "MAX_CONTENT",
    "apply_delta",
    "failure_text",
    "open_fence",
    "paginate",
]

MAX_CONTENT = 2000  # Discord's limit on a message's `content`
FENCE = "```"
_CLOSER = "\n" + FENCE
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,20}")
EMPTY_ANSWER = "*(The assistant returned an empty answer.)*"
_MAX_ERROR_CHARS = 300


def _fences(text: str) -> list[int]:
    """Start offsets of every ``` in `text` (each one opens or closes a code block)."""
    out, pos = [], text.find(FENCE)
    while pos != -1:
        out.append(pos)
        pos = text.find(FENCE, pos + len(FENCE))
    return out


def open_fence(text: str) -> str:
    """The opener ("```py\\n") of a code block left open at the end of `text`, or ""."""
    fences = _fences(text)
    if len(fences) % 2 == 0:
        return ""
    after = fences[-1] + len(FENCE)
    line = text[after:].split("\n", 1)[0]
    # A language tag only counts when the line ends there; "```code```" style has none.
    has_newline = "\n" in text[after:]
    language = line if has_newline and _LANGUAGE.fullmatch(line) else ""
    return f"{FENCE}{language}\n"


def _is_open(fences: list[int], offset: int) -> bool:
    """Whether position `offset` lies inside a code block, given the fence offsets before it."""
    return bisect_right(fences, offset - len(FENCE)) % 2 == 1


def _find_break(page: str, fences: list[int], start: int) -> tuple[int, int]:
    """Where to end the page (`end`) and where the next one starts (`skip`), both offsets in `page`.

    `page` is one window of text (one character longer than the room, to see whether the window
    ends on a word boundary); breaks before `start` (the reopened fence) are not considered.
    """
    room = len(page) - 1
    half = max(start + 1, room // 2)
    # 1. a paragraph break outside code, 2. a line break outside code, 3. any line break
    for separator, outside_only in (("\n\n", True), ("\n", True), ("\n", False)):
        pos = page.rfind(separator, half)
        while pos >= half:
            if not outside_only or not _is_open(fences, pos):
                skip = pos
                while skip < len(page) and page[skip] == "\n":
                    skip += 1
                return pos, skip
            pos = page.rfind(separator, half, pos)
    pos = page.rfind(" ", half)
    if pos >= half:
        return pos, pos + 1
    return room, room  # no break in sight: cut mid-word


def _trim(page: str, opener: str) -> str:
    """Whitespace around a page is dropped (Discord drops it too), but not inside a reopened block."""
    return page.rstrip() if opener else page.strip()


def paginate(text: str, limit: int = MAX_CONTENT) -> list[str]:
    """Split `text` into message contents of at most `limit` characters each.

    Pages are trimmed of surrounding whitespace; whitespace-only pages are dropped, so an empty
    text gives `[]`. Code fences are closed at the end of a page and reopened on the next.
    """
    if limit < 64:
        raise ValueError("limit must leave room for code fence markers (at least 64)")
    pages: list[str] = []
    pos, opener = 0, ""
    while pos < len(text):
        rest = opener + text[pos:]
        fences = _fences(rest)
        closer = _CLOSER if len(fences) % 2 else ""
        if len(rest.rstrip()) + len(closer) <= limit:
            if text[pos:].strip():
                pages.append(_trim(rest, opener) + closer)
            break
        # Always keep room for a closing fence, so a page never has to be cut again.
        window = rest[: limit - len(_CLOSER) + 1]
        end, skip = _find_break(window, fences, len(opener))
        reopen = open_fence(rest[:end])
        if rest[len(opener) : end].strip():  # a page of nothing but whitespace is not sent
            pages.append(_trim(rest[:end], opener) + (_CLOSER if reopen else ""))
        pos += skip - len(opener)
        opener = reopen
    return pages


def apply_delta(text: str, kind: str, delta: str) -> str:
    """The answer text after one streamed delta: `text` appends, `replace` replaces, others don't show."""
    if kind == "text":
        return text + delta
    if kind == "replace":
        return delta
    return text


def failure_text(shown: str, message: str) -> str:
    """What a failed answer leaves on screen: the text so far, then a short readable error line."""
    short = " ".join(message.split())[:_MAX_ERROR_CHARS] or "the assistant did not answer"
    note = f"⚠️ Sorry, the answer failed: {short}"
    return f"{shown.rstrip()}\n\n{note}" if shown.strip() else note
