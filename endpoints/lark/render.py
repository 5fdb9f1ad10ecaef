"""An answer's Markdown as the content of a card's markdown element, made harmless.

Lark's card Markdown reads tags: `<at id=all></at>` mentions everyone, `<at id=ou_…>` one
person, `<font>`, `<link>`, `<a>` and others change what is shown. Outside code, every `<` is
escaped (`&lt;`), so no answer can mention anyone or inject a tag; links are neutralised:
`[label](url)` shows as `label (url)`, so a label never hides where a link goes, and images
(`![alt](key)`) show their alt text. Code (fenced blocks and inline spans) is shown as written:
Lark does not read tags there.
"""

from __future__ import annotations

import re

__all__ = ["ENTITIES", "is_reset", "protect_entities", "to_card_markdown"]

_CODE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]*`)", re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]*)(?:\s+\"[^\"\n]*\")?\)")
ENTITIES = ("&lt;",)
_RESET_WORDS = frozenset({"reset", "/reset", "重置", "新对话"})


def _link(match: re.Match[str]) -> str:
    label, url = match.group(1).strip(), match.group(2)
    if not url or label == url:
        return label or url
    return f"{label} ({url})" if label else url


def _plain(text: str) -> str:
    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(_link, text)
    return text.replace("<", "&lt;")


def to_card_markdown(text: str) -> str:
    """`text` (Markdown) as a card's markdown content: tags and mentions escaped, links spelled out."""
    out, pos = [], 0
    for match in _CODE.finditer(text):
        out.append(_plain(text[pos : match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_plain(text[pos:]))
    return "".join(out)


def protect_entities(text: str, cut: int, floor: int) -> int:
    """Move a cut back out of an escaped `&lt;` (never below `floor`)."""
    start = text.rfind("&", max(floor, cut - 3), cut)
    if start != -1 and text.startswith(ENTITIES, start) and start + 4 > cut:
        return start
    return cut


def is_reset(question: str) -> bool:
    """True when the message asks to forget the conversation ("reset", "/reset")."""
    return question.strip().lower() in _RESET_WORDS
