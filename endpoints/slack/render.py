"""Text between Slack and Dify, pure: Markdown to mrkdwn, where messages may be cut, Slack markup
to plain text.

- `to_mrkdwn`: Dify answers in Markdown; Slack's `text` and section blocks speak mrkdwn. `&`, `<`
  and `>` are escaped everywhere, so an answer can never ping `<!channel>` or forge a link.
  (Why not Slack's `markdown` block or a converter from PyPI: see the README's Slack section.)
- `defuse_mentions`: the same guarantee for the Markdown of native streams.
- `protect_tokens`: the delivery engine pages answers at the limit, never inside a `<link|label>`
  or an `&amp;` entity.
"""

from __future__ import annotations

import re

from gateway.plugin import FENCE, hide_reasoning

__all__ = [
    "defuse_mentions",
    "hide_reasoning",
    "is_reset",
    "protect_tokens",
    "slack_to_plain",
    "to_mrkdwn",
]

# -- Markdown to mrkdwn --------------------------------------------------------------------------

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)[\s#]*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_INLINE = re.compile(
    r"(?P<code>```.+?```|`[^`]+`)"
    r"|(?P<link>!?\[(?P<label>[^\]]+)\]\((?P<url>[^)\s]+)(?:\s+\"[^\"]*\")?\))"
    r"|(?P<auto><(?P<aurl>(?:https?|mailto):[^>\s]+)>)"
)
_BOLD_ITALIC = re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x01"  # stands for mrkdwn's `*` while single `*` italics are converted


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _is_fence(line: str) -> bool:
    """A line that opens or closes a code block (not one holding a whole ```inline``` span)."""
    stripped = line.strip()
    return stripped.startswith(FENCE) and FENCE not in stripped[3:]


def _emphasis(text: str) -> str:
    text = _BOLD_ITALIC.sub(lambda m: f"{_BOLD_MARK}_{m.group(1)}_{_BOLD_MARK}", text)
    text = _BOLD.sub(lambda m: _BOLD_MARK + m.group(2) + _BOLD_MARK, text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    return text.replace(_BOLD_MARK, "*")


def _url(url: str) -> str:
    # `|` and `>` end a Slack link; percent-encoding keeps the URL working.
    return url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace("&", "&amp;")


def _inline(text: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _INLINE.finditer(text):
        out.append(_emphasis(_escape(text[pos : match.start()])))
        if match.group("code") is not None:
            out.append(_escape(match.group("code")))
        elif match.group("link") is not None:
            out.append(f"<{_url(match.group('url'))}|{_escape(match.group('label'))}>")
        else:
            out.append(f"<{_url(match.group('aurl'))}>")
        pos = match.end()
    out.append(_emphasis(_escape(text[pos:])))
    return "".join(out)


def _line(line: str) -> str:
    if heading := _HEADING.match(line):
        title = heading.group(1).replace("**", "").replace("__", "")
        return f"*{_inline(title)}*" if title else ""
    if quote := _QUOTE.match(line):
        return ">" + _inline(quote.group(1))  # a literal `>` starts a mrkdwn quote
    if bullet := _BULLET.match(line):
        return f"{bullet.group(1)}• {_inline(bullet.group(2))}"
    return _inline(line)


def to_mrkdwn(markdown: str) -> str:
    """Render Markdown as Slack mrkdwn (bold, italics, strike, links, headings, lists, code)."""
    out: list[str] = []
    in_code = False
    for line in markdown.replace(_BOLD_MARK, "").split("\n"):
        if _is_fence(line):
            in_code = not in_code
            out.append(FENCE)  # the language tag would show as text in Slack
        elif in_code:
            out.append(_escape(line))
        else:
            out.append(_line(line))
    return "\n".join(out)


_SLACK_SYNTAX = re.compile(r"<(?=[!@#])")


def defuse_mentions(markdown: str) -> str:
    """Markdown for Slack's native streams, with Slack's own syntax (`<!channel>`, `<@U…>`,
    `<#C…>`) broken by a zero-width space: a generated answer must never ping anyone."""
    return _SLACK_SYNTAX.sub("<\u200b", markdown)


# -- splitting ----------------------------------------------------------------------------------

_ENTITY = re.compile(r"&(?:amp|lt|gt);")


def protect_tokens(text: str, cut: int, floor: int) -> int:
    """Move `cut` back out of a `<…>` token or an `&…;` entity, unless that leaves too little
    (before `floor`): the `protect` of the gateway's splitting helpers for mrkdwn."""
    start = text.rfind("<", 0, cut)
    if start > text.rfind(">", 0, cut) and start >= floor:
        cut = start
    amp = text.rfind("&", max(0, cut - 4), cut)
    entity = _ENTITY.match(text, amp) if amp >= floor else None
    if entity is not None and entity.end() > cut:
        cut = amp
    return cut


# -- Slack to Dify ------------------------------------------------------------------------------

_LABELLED_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)\|([^>]+)>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")


def slack_to_plain(text: str, bot_user_id: str | None) -> str:
    """The message as the Dify app should read it: the bot's mentions removed, links and
    channel names spelled out, entities decoded. Other people's mentions stay as `<@U…>`."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[ \t]?", "", text)
    text = _LABELLED_LINK.sub(
        lambda m: m.group(1) if m.group(2) == m.group(1) else f"{m.group(2)} ({m.group(1)})", text
    )
    text = _LINK.sub(r"\1", text)
    text = _CHANNEL.sub(r"#\1", text)
    text = _SPECIAL.sub(r"@\1", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.strip()


def is_reset(text: str) -> bool:
    """True when the message (mention removed) is the `reset` command."""
    return text.strip().strip(".!").lower() == "reset"
