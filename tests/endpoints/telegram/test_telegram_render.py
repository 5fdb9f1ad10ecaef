"""Markdown to Telegram HTML: what renders, what is escaped, and that every output parses as Telegram
parses it (the fake's parser: unknown or unbalanced tags and unknown entities are refused)."""

from __future__ import annotations

import pytest

from endpoints.telegram.render import to_html, to_plain
from gateway.plugin import split_text
from gateway.testing.platforms.telegram import parse_html


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("**bold** and *it* and ~~gone~~", "<b>bold</b> and <i>it</i> and <s>gone</s>"),
        ("`x < y && z`", "<code>x &lt; y &amp;&amp; z</code>"),
        (
            "```python\nif a < b:\n    pass\n```",
            '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>',
        ),
        ("```\nplain\n```", "<pre>plain</pre>"),
        ('```"><script>\nx\n```', "<pre>x</pre>"),  # a language that is not one is dropped
        ("# Title\n\ntext", "<b>Title</b>\n\ntext"),
        ("- a\n- b\n  - c", "• a\n• b\n  • c"),
        ("3. x\n4. y", "3. x\n4. y"),
        ("> quoted", "<blockquote>quoted</blockquote>"),
        ("[Dify](https://dify.ai/?a=1&b=2)", '<a href="https://dify.ai/?a=1&amp;b=2">Dify</a>'),
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ('[x](https://a.b/" onclick="y)', '[x](https://a.b/" onclick="y)'),  # not a link: text
        ("<b>not a tag</b> <script>", "&lt;b&gt;not a tag&lt;/b&gt; &lt;script&gt;"),
        ("a & b &amp; c &#x41;", "a &amp; b &amp; c A"),
        ("ping @channel_admins", "ping @\u2060channel_admins"),
        ("line one\nline two", "line one\nline two"),
        ("", ""),
    ],
)
def test_markdown_renders_as_telegram_html(markdown: str, html: str) -> None:
    rendered = to_html(markdown)
    assert rendered == html
    parse_html(rendered)  # Telegram would take it


HOSTILE = [
    "</b></i></pre><b>",
    "<a href='x'>",
    "&bogus; &#9999999999; & &&",
    "**unclosed bold and `unclosed code",
    "```\nunclosed fence <b>",
    "[link](<https://x.y/a b>) ![img](data:text/html,x)",
    "* * *\n___\n---",
    "<tg-spoiler>x</tg-spoiler> <span class='tg-spoiler'>y</span>",
    "\u202eRTL\u202c and \x00 nul",
    "> > > deep\n> quote",
]


@pytest.mark.parametrize("markdown", HOSTILE)
def test_hostile_answers_always_parse_and_show_their_text(markdown: str) -> None:
    rendered = to_html(markdown)
    shown = parse_html(rendered)
    assert shown == to_plain(rendered)
    for fragment in ("</b>", "<a href", "<tg-spoiler>"):
        if fragment in markdown:
            assert fragment in shown  # shown as text, never as markup


def test_each_page_of_a_long_answer_renders_on_its_own() -> None:
    answer = "**" + "bold words " * 300 + "**\n\n```py\n" + "x = 1\n" * 400 + "```"
    pages = split_text(answer, 1000)
    assert len(pages) > 3
    for page in pages:
        parse_html(to_html(page))


@pytest.mark.parametrize(
    "link", ["tg://user?id=12345", "TG://USER?ID=12345", "tg:user?id=12345", "tg:///user?id=1", "tg://%75ser?id=12345"]
)
def test_a_link_to_a_user_is_text_so_an_answer_cannot_notify_anyone(link: str) -> None:
    # `<a href="tg://user?id=…">` is Telegram's inline mention: it notifies that person in a group.
    rendered = to_html(f"hello [you]({link}) and @admins")
    assert rendered == "hello you and @\u2060admins"
    assert to_html("[chan](tg://resolve?domain=dify)") == '<a href="tg://resolve?domain=dify">chan</a>'
