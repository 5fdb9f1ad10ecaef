"""Dify's Markdown as Telegram HTML (parse_mode HTML), and back to plain text.

Markdown is parsed with markdown-it-py (CommonMark, raw HTML off) and written with only the tags
Telegram's HTML mode knows: `<b>`, `<i>`, `<s>`, `<code>`, `<pre><code class="language-…">`,
`<blockquote>` and `<a href>` (http, https, tg and mailto links only). Everything else is text,
escaped (`&`, `<`, `>`): an answer can never break the message or inject markup. Headings become
bold lines, list items "•" or "1." lines, rules a line of dashes. An `@name` in the text gets a
word joiner after its `@`, and a `tg://user?id=…` link (Telegram's inline mention) is shown as its
label only, so a generated answer cannot notify people in a group.

The engine splits the Markdown and renders each page on its own (`ChatRules.render_pages`), so a
tag never spans two messages. `to_plain` is the text of rendered HTML, sent when Telegram refuses
the markup after all.
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

__all__ = ["to_html", "to_plain"]

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")
_SAFE_LINK = re.compile(r"(?:https?|tg|mailto):", re.IGNORECASE)
_USER_LINK = re.compile(r"tg:/*user\b", re.IGNORECASE)  # an inline mention: it notifies that person
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,30}")
_MENTION = re.compile(r"@(?=[A-Za-z0-9_])")
_TAG = re.compile(r"<[^>]*>")
_WORD_JOINER = "\u2060"
_INLINE_TAGS = {"strong": "b", "em": "i", "s": "s"}


def _text(value: str) -> str:
    return html.escape(_MENTION.sub("@" + _WORD_JOINER, value), quote=False)


def _inline(node: SyntaxTreeNode) -> str:
    out: list[str] = []
    for child in node.children:
        kind = child.type
        if kind == "text":
            out.append(_text(child.content))
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "code_inline":
            out.append(f"<code>{html.escape(child.content, quote=False)}</code>")
        elif kind in _INLINE_TAGS:
            tag = _INLINE_TAGS[kind]
            out.append(f"<{tag}>{_inline(child)}</{tag}>")
        elif kind in ("link", "image"):
            label = _inline(child) or _text(str(child.attrs.get("alt") or "")) or "image"
            href = str(child.attrs.get("href") or child.attrs.get("src") or "")
            safe = _SAFE_LINK.match(href) and not _USER_LINK.match(unquote(href))
            out.append(f'<a href="{html.escape(href)}">{label}</a>' if safe else label)
        else:  # html_inline cannot occur (raw HTML is off); anything new shows as its text
            out.append(_inline(child) if child.children else _text(child.content))
    return "".join(out)


def _indent(text: str, width: int) -> str:
    return text.replace("\n", "\n" + " " * width)


def _list(node: SyntaxTreeNode) -> str:
    ordered = node.type == "ordered_list"
    start = node.attrs.get("start", 1)
    first = start if isinstance(start, int) else 1
    items = []
    for index, item in enumerate(node.children):
        marker = f"{first + index}." if ordered else "•"
        body = "\n".join(filter(None, (_block(child) for child in item.children)))
        items.append(f"{marker} {_indent(body, len(marker) + 1)}")
    tight = all(p.hidden for item in node.children for p in item.children if p.type == "paragraph")
    return ("\n" if tight else "\n\n").join(items)


def _code(content: str, info: str) -> str:
    language = info.split()[0] if info.split() else ""
    code = html.escape(content.rstrip("\n"), quote=False)
    if _LANGUAGE.fullmatch(language):
        return f'<pre><code class="language-{language}">{code}</code></pre>'
    return f"<pre>{code}</pre>"


def _block(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind == "inline":
        return _inline(node)
    if kind == "paragraph":
        return "".join(_block(child) for child in node.children)
    if kind == "heading":
        return "<b>" + "".join(_block(child) for child in node.children) + "</b>"
    if kind in ("fence", "code_block"):
        return _code(node.content, node.info if kind == "fence" else "")
    if kind in ("bullet_list", "ordered_list"):
        return _list(node)
    if kind == "hr":
        return "———"
    inner = "\n\n".join(filter(None, (_block(child) for child in node.children)))
    if kind == "blockquote":
        return f"<blockquote>{inner}</blockquote>"
    return inner if node.is_root or node.children else _text(node.content)


def to_html(markdown: str) -> str:
    """`markdown` as Telegram HTML (see the module docstring); blank text gives ""."""
    return _block(SyntaxTreeNode(_MARKDOWN.parse(markdown))).strip()


def to_plain(rendered: str) -> str:
    """The text a reader sees of HTML made by `to_html` (its tags dropped, entities decoded)."""
    return html.unescape(_TAG.sub("", rendered))
